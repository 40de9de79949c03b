"""History from CoinGecko's market_chart/range: finds the gaps in stored ticks, plans the calls that fill them, parses the answers."""

from __future__ import annotations

import asyncio
import bisect
import dataclasses
import datetime as dt
import logging
import math
import random
import re
import statistics
import time
from typing import Any, Awaitable, Callable, Optional, Sequence

from cryptoapp.coins import Coin
from cryptoapp.prices.models import UTC, PriceTick, iso_z
from cryptoapp.settings import Settings
from cryptoapp.sources.coingecko import MAX_PAUSE, CoinGeckoClient, RateLimited, Retryable, SourceError
from cryptoapp.storage import StorageError

log = logging.getLogger(__name__)

SOURCE = "coingecko-backfill"
# CoinGecko answers a span of up to one day with ~5-minute points and longer spans with hourly ones, so no
# call spans more than a day: a 168 h window costs 7 calls per coin instead of 1, for 12x finer history.
LONGEST_CALL = dt.timedelta(days=1)
GRANULARITIES = {"5m": 300, "1h": 3600, "1d": 86400}
FINEST = GRANULARITIES["5m"]
# A hole shorter than two 5-minute steps may hold no point of CoinGecko's series: asking for it again on
# every run would spend calls and add nothing.
MIN_GAP = 2 * FINEST
RATE_LIMITS_BEFORE_GIVING_UP = 5


@dataclasses.dataclass(frozen=True)
class Span:
    """A stretch of time; the ends belong to stored ticks (or the window), the inside is what is missing."""

    start: dt.datetime
    end: dt.datetime

    @property
    def seconds(self) -> float:
        return (self.end - self.start).total_seconds()

    def __str__(self) -> str:
        return f"{iso_z(self.start)}..{iso_z(self.end)}"


def granularity_seconds(text: Optional[str]) -> int:
    """'5m' -> 300, '1h' -> 3600; 0 for a live tick (None) or a label not understood."""
    match = re.fullmatch(r"(\d+)([smhd])", text) if isinstance(text, str) else None
    if not match:
        return 0
    return int(match.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[match.group(2)]


def gap_threshold(interval: float, *granularities: Optional[str]) -> float:
    """Seconds without a tick that make a gap: two poll intervals, or two steps of the backfilled
    neighbours' series (filled history is as dense as the source gave it, not a gap), never under MIN_GAP."""
    return max(2 * interval, MIN_GAP, *(2 * granularity_seconds(g) for g in granularities))


def find_gaps(stored: Sequence[tuple[dt.datetime, Optional[str]]], start: dt.datetime, end: dt.datetime,
              interval: float) -> list[Span]:
    """The spans of [start, end] with no stored tick for longer than gap_threshold().

    `stored` holds (source time, granularity or None) pairs sorted by time, as PriceStore.stored_times gives them.
    """
    gaps = []
    previous, previous_granularity = start, None
    for timestamp, granularity in stored:
        if timestamp < start:
            continue
        if timestamp > end:
            break
        if (timestamp - previous).total_seconds() > gap_threshold(interval, previous_granularity, granularity):
            gaps.append(Span(previous, timestamp))
        previous, previous_granularity = timestamp, granularity
    if (end - previous).total_seconds() > gap_threshold(interval, previous_granularity):
        gaps.append(Span(previous, end))
    return gaps


def _whole_seconds(ts: dt.datetime, up: bool) -> dt.datetime:
    seconds = ts.timestamp()
    return dt.datetime.fromtimestamp(math.ceil(seconds) if up else math.floor(seconds), UTC)


def plan_chunks(gaps: Sequence[Span], longest: dt.timedelta = LONGEST_CALL) -> list[Span]:
    """The fewest calls of at most `longest` (whole Unix seconds) that cover every gap.

    Greedy from the oldest uncovered moment, which is optimal for covering intervals with fixed-length
    windows: gaps close together share one call, a long gap is cut into `longest` pieces.
    """
    chunks: list[Span] = []
    for gap in gaps:
        low, high = _whole_seconds(gap.start, up=False), _whole_seconds(gap.end, up=True)
        if chunks:
            reach = chunks[-1].start + longest
            if low < reach:  # this gap starts within reach of the last call: widen that call
                chunks[-1] = Span(chunks[-1].start, max(chunks[-1].end, min(high, reach)))
                low = max(low, reach)
        while low < high:
            chunks.append(Span(low, min(high, low + longest)))
            low += longest
    return chunks


def chart_range_request(coin: Coin, chunk: Span) -> tuple[str, dict[str, str]]:
    """Path and query of GET /coins/{id}/market_chart/range for one chunk (from/to in Unix seconds)."""
    return (f"/coins/{coin.coin_id}/market_chart/range",
            {"vs_currency": "usd", "from": str(int(chunk.start.timestamp())), "to": str(int(chunk.end.timestamp()))})


def granularity_of(times_ms: Sequence[int], span_seconds: float) -> str:
    """The spacing of an answer's points as a label ("5m", "1h", "1d"): measured from the points
    (median step, nearest label), or, with fewer than two points, what CoinGecko gives for the span."""
    if len(times_ms) >= 2:
        step = statistics.median(b - a for a, b in zip(times_ms, times_ms[1:])) / 1000
        if step > 0:
            return min(GRANULARITIES, key=lambda label: abs(math.log(step / GRANULARITIES[label])))
    if span_seconds <= 86400:
        return "5m"
    return "1h" if span_seconds <= 90 * 86400 else "1d"


def _ms_time(value: Any) -> Optional[int]:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        return None
    return int(value)


def _number(value: Any) -> Optional[float]:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def _series(payload: dict, key: str) -> dict[int, float]:
    """A [[ms, number], ...] series as {ms: number}, unusable entries left out."""
    out = {}
    for item in payload.get(key) or []:
        if isinstance(item, (list, tuple)) and len(item) == 2:
            ms, number = _ms_time(item[0]), _number(item[1])
            if ms is not None and number is not None:
                out[ms] = number
    return out


def parse_market_chart_range(payload: Any, coin: Coin, chunk: Span,
                             fetched_at: dt.datetime) -> tuple[list[PriceTick], int]:
    """The ticks of one market_chart/range answer, oldest first, and how many points were unusable.

    `volume_24h` comes from `total_volumes` (CoinGecko's rolling 24 h volume) and `market_cap` from
    `market_caps`, matched by time; bid/ask stay None (CoinGecko has none). `change_24h_pct` stays None:
    no call spans more than a day, so no answer holds the price 24 h before any of its points, and
    taking it from another answer or from live ticks would mix series.
    """
    if not isinstance(payload, dict) or not isinstance(payload.get("prices"), list):
        kind = type(payload).__name__ if not isinstance(payload, dict) else "an object without a 'prices' list"
        raise SourceError(f"CoinGecko's market_chart/range answer is {kind}, not a price series")
    volumes, caps = _series(payload, "total_volumes"), _series(payload, "market_caps")
    prices: dict[int, float] = {}
    unusable = 0
    for item in payload["prices"]:
        ms = _ms_time(item[0]) if isinstance(item, (list, tuple)) and len(item) == 2 else None
        price = _number(item[1]) if ms is not None else None
        if ms is None or price is None or price <= 0:
            unusable += 1
            continue
        prices[ms] = price
    times = sorted(prices)
    granularity = granularity_of(times, chunk.seconds)
    ticks = [PriceTick(
        ticker=coin.ticker,
        timestamp=dt.datetime.fromtimestamp(ms // 1000, UTC) + dt.timedelta(milliseconds=ms % 1000),
        value=prices[ms],
        source=SOURCE,
        currency="usd",
        volume_24h=volumes.get(ms),
        market_cap=caps.get(ms),
        granularity=granularity,
        fetched_at=fetched_at,
    ) for ms in times]
    return ticks, unusable


def ticks_in(ticks: Sequence[PriceTick], gaps: Sequence[Span]) -> list[PriceTick]:
    """The ticks strictly inside one of the (sorted, disjoint) gaps: stored ticks stay the only ones at their ends."""
    starts = [gap.start for gap in gaps]
    out = []
    for tick in ticks:
        i = bisect.bisect_left(starts, tick.timestamp) - 1
        if i >= 0 and gaps[i].start < tick.timestamp < gaps[i].end:
            out.append(tick)
    return out


def backfill_rate(requests_per_minute: int, interval: float) -> float:
    """Calls per minute the backfill may make: the budget less the live polls' share and one call of slack.

    At least one a minute: when live polls alone use up the budget, the shared limiter still caps the sum.
    """
    return float(max(1, requests_per_minute - math.ceil(60 / interval) - 1))


def rate_limit_pause(retry_after: Optional[float], in_a_row: int, interval: float) -> float:
    """Seconds to wait after a 429, like the live source: Retry-After when given, else exponential backoff
    from the poll interval with full jitter."""
    if retry_after is not None:
        return retry_after
    return random.uniform(0.5, 1.0) * min(MAX_PAUSE, interval * 2 ** in_a_row)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


@dataclasses.dataclass
class BackfillReport:
    calls: int = 0
    published: dict[str, list[dt.datetime]] = dataclasses.field(default_factory=dict)  # ticker -> tick times
    unfinished: list[str] = dataclasses.field(default_factory=list)  # tickers whose gaps wait for a later run

    @property
    def ticks(self) -> int:
        return sum(len(times) for times in self.published.values())


class GiveUp(Exception):
    """The source cannot serve this run any more (unreachable, rate limit that does not pass)."""


class HistoryBackfill:
    """One pass over the coins: reads stored times, calls market_chart/range per planned chunk, publishes
    the points that fall into gaps. Its calls go through the shared request budget, paced to leave the
    live polls their share."""

    def __init__(self, store, client: CoinGeckoClient, publish: Callable[[list[PriceTick]], Awaitable[None]], *,
                 interval: float, requests_per_minute: int, say: Callable[..., None] = log.info,
                 clock: Callable[[], float] = time.time):
        self.store = store
        self.client = client
        self.publish = publish
        self.interval = interval
        self.say = say
        self.clock = clock
        self.rate = backfill_rate(requests_per_minute, interval)
        # Evenly spaced, never in a burst: the shared budget alone would let the backfill take a whole
        # minute's calls at once and make the next live poll wait for them.
        self._next_call = 0.0
        if requests_per_minute - math.ceil(60 / interval) - 1 < 1:
            log.warning("live polls every %g s use all of CRYPTO_REQUESTS_PER_MINUTE=%d: backfill goes at one "
                        "call a minute; raise CRYPTO_INTERVAL or the budget to backfill faster",
                        interval, requests_per_minute)

    async def run(self, coins: Sequence[Coin], hours: float) -> BackfillReport:
        end = dt.datetime.fromtimestamp(int(self.clock()), UTC)
        start = end - dt.timedelta(hours=hours)
        report = BackfillReport()
        began, calls_before = time.monotonic(), self.client.calls
        self.say("backfill: looking for gaps in the last %g h of %s (at most %g calls/min)",
                 hours, ", ".join(c.ticker for c in coins), self.rate)
        for i, coin in enumerate(coins):
            try:
                await self._fill(coin, start, end, report)
            except GiveUp as exc:
                report.unfinished += [c.ticker for c in coins[i:]]
                log.warning("backfill stopped at %s: %s; the gaps left wait for the next run (a restart or "
                            "`cryptoapp backfill`)", coin.ticker, exc)
                break
        report.calls = self.client.calls - calls_before
        self.say("backfill done: %s published from %s for %s in %.0f s%s", _count(report.ticks, "tick"),
                 _count(report.calls, "call"), _count(len(coins), "coin"), time.monotonic() - began,
                 f"; unfinished: {', '.join(report.unfinished)}" if report.unfinished else "")
        return report

    async def _fill(self, coin: Coin, start: dt.datetime, end: dt.datetime, report: BackfillReport) -> None:
        gaps = find_gaps(await self.store.stored_times(coin.ticker, start), start, end, self.interval)
        if not gaps:
            self.say("backfill %s: no gaps", coin.ticker)
            return
        chunks = plan_chunks(gaps)
        self.say("backfill %s: %s, %.1f h in all: %s", coin.ticker, _count(len(gaps), "gap"),
                 sum(g.seconds for g in gaps) / 3600, _count(len(chunks), "call"))
        published = report.published.setdefault(coin.ticker, [])
        for chunk in chunks:
            try:
                answer = await self._fetch(coin, chunk)
                ticks, unusable = parse_market_chart_range(answer, coin, chunk, dt.datetime.now(UTC))
            except SourceError as exc:  # this coin's own trouble (unknown id, a bad answer): the others go on
                report.unfinished.append(coin.ticker)
                log.warning("backfill %s: %s; its gaps wait for the next run", coin.ticker, exc)
                return
            filling = ticks_in(ticks, gaps)
            if filling:
                await self.publish(filling)
                published += [t.timestamp for t in filling]
            self.say("backfill %s %s: %d points (%s), %d in gaps published%s", coin.ticker, chunk, len(ticks),
                     ticks[0].granularity if ticks else "none", len(filling),
                     f", {unusable} unusable" if unusable else "")

    async def _pace(self) -> None:
        now = time.monotonic()
        if self._next_call > now:
            await asyncio.sleep(self._next_call - now)
        self._next_call = max(now, self._next_call) + 60 / self.rate

    async def _fetch(self, coin: Coin, chunk: Span) -> Any:
        path, params = chart_range_request(coin, chunk)
        for in_a_row in range(1, RATE_LIMITS_BEFORE_GIVING_UP + 1):
            await self._pace()
            try:
                return await self.client.get_json(path, params)
            except RateLimited as exc:
                pause = rate_limit_pause(exc.retry_after, in_a_row, self.interval)
                log.warning("backfill %s: %s; pausing the backfill for %.0f s, then going on (live polls keep "
                            "their own pace)", coin.ticker, exc, pause)
                await asyncio.sleep(pause)
            except Retryable as exc:
                raise GiveUp(str(exc)) from None
        raise GiveUp(f"CoinGecko still rate limits after {RATE_LIMITS_BEFORE_GIVING_UP} pauses")


async def backfill_at_start_up(settings: Settings, coins: Sequence[Coin], store,
                               publish: Callable[[list[PriceTick]], Awaitable[None]], budget) -> None:
    """The worker's start-up run over the last CRYPTO_BACKFILL_HOURS; problems are logged, never raised,
    so live polling never depends on it. `budget` is the live source's request budget (`async with budget:`)."""
    if settings.source != "coingecko":
        log.info("no backfill: CRYPTO_SOURCE=%s has no history to fetch", settings.source)
        return
    if not settings.backfill_hours:
        log.info("no backfill at start-up (CRYPTO_BACKFILL_HOURS=0); `cryptoapp backfill` fills gaps on demand")
        return
    try:
        async with CoinGeckoClient(settings.coingecko_api_url, settings.coingecko_api_key, budget) as client:
            await HistoryBackfill(store, client, publish, interval=settings.interval,
                                  requests_per_minute=settings.requests_per_minute).run(coins, settings.backfill_hours)
    except StorageError as exc:
        log.warning("backfill skipped: %s; `cryptoapp backfill` fills the gaps once it answers", exc)
    except asyncio.CancelledError:
        raise
    except Exception:  # a bug: its traceback is worth having, but the worker polls on without history
        log.exception("backfill failed; live polling goes on")
