"""The backfill: finds the gaps in stored ticks, plans the market_chart/range calls that fill them, publishes
what falls into the gaps; the worker runs it at start-up, `cryptoapp backfill` on demand."""

from __future__ import annotations

import asyncio
import bisect
import dataclasses
import datetime as dt
import logging
import math
import time
from typing import Any, Awaitable, Callable, Optional, Sequence

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_attempt

from cryptoapp.coins import Coin
from cryptoapp.prices.models import PriceTick
from cryptoapp.schema import UTC, gap_threshold
from cryptoapp.sources.coingecko import CoinGeckoClient, RateLimited, Retryable, rate_limit_pause
from cryptoapp.sources.coingecko_answers import SourceError, Span, chart_range_request, parse_market_chart_range

log = logging.getLogger(__name__)

# CoinGecko answers a span of up to one day with ~5-minute points and longer spans with hourly ones, so no
# call spans more than a day: a 168 h window costs 7 calls per coin instead of 1, for 12x finer history.
LONGEST_CALL = dt.timedelta(days=1)
RATE_LIMITS_BEFORE_GIVING_UP = 5


def find_gaps(stored: Sequence[tuple[dt.datetime, Optional[str]]], start: dt.datetime, end: dt.datetime,
              interval: float) -> list[Span]:
    """The spans of [start, end] with no stored tick for longer than gap_threshold().

    `stored` holds (source time, granularity or None) pairs sorted by time, as PriceStore.ticks.stored_times gives them.
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
    live polls their share. `store` is the ticks storage (PriceStore.ticks): it reads stored_times."""

    def __init__(self, store, client: CoinGeckoClient, publish: Callable[[list[PriceTick]], Awaitable[None]], *,
                 interval: float, requests_per_minute: int, say: Callable[..., None] = log.info,
                 clock: Callable[[], float] = time.time, progress: Optional[dict] = None):
        self.store = store
        # What the pipeline status shows while it runs: state, coins looked at, calls made and planned so far.
        self.progress = progress if progress is not None else {}
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
        self.progress.clear()
        self.progress.update(state="running", coins=len(coins), coins_done=0, calls=0, planned=0,
                             started_at=dt.datetime.now(UTC))
        began, calls_before = time.monotonic(), self.client.calls
        self.say("backfill: looking for gaps in the last %g h of %s (at most %g calls/min)",
                 hours, ", ".join(c.ticker for c in coins), self.rate)
        for i, coin in enumerate(coins):
            try:
                await self._fill(coin, start, end, report)
                self.progress["coins_done"] = i + 1
            except GiveUp as exc:
                report.unfinished += [c.ticker for c in coins[i:]]
                log.warning("backfill stopped at %s: %s; the gaps left wait for the next run (a restart or "
                            "`cryptoapp backfill`)", coin.ticker, exc)
                break
        report.calls = self.client.calls - calls_before
        self.progress.update(state="unfinished" if report.unfinished else "done", calls=report.calls,
                             ticks=report.ticks, unfinished=report.unfinished, finished_at=dt.datetime.now(UTC))
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
        self.progress["planned"] = self.progress.get("planned", 0) + len(chunks)
        self.say("backfill %s: %s, %.1f h in all: %s", coin.ticker, _count(len(gaps), "gap"),
                 sum(g.seconds for g in gaps) / 3600, _count(len(chunks), "call"))
        published = report.published.setdefault(coin.ticker, [])
        for chunk in chunks:
            try:
                answer = await self._fetch(coin, chunk)
                self.progress["calls"] = self.progress.get("calls", 0) + 1
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

    def _called(self) -> None:
        # Spaced from when a call came back, not from when it was due: the shared budget may have held it
        # back behind a live poll, and the next one must still come no sooner than its share allows.
        self._next_call = time.monotonic() + 60 / self.rate

    async def _fetch(self, coin: Coin, chunk: Span) -> Any:
        """One call, paced; a 429 pauses the backfill (live polls keep their own pace) and asks again, up to
        RATE_LIMITS_BEFORE_GIVING_UP times; an unreachable CoinGecko ends the run."""
        path, params = chart_range_request(coin, chunk)

        def pause(state: RetryCallState) -> float:
            return rate_limit_pause(state.outcome.exception().retry_after, state.attempt_number, self.interval)

        def say_paused(state: RetryCallState) -> None:
            log.warning("backfill %s: %s; pausing the backfill for %.0f s, then going on (live polls keep "
                        "their own pace)", coin.ticker, state.outcome.exception(), state.upcoming_sleep)

        try:
            async for attempt in AsyncRetrying(retry=retry_if_exception_type(RateLimited), wait=pause,
                                               stop=stop_after_attempt(RATE_LIMITS_BEFORE_GIVING_UP),
                                               before_sleep=say_paused, reraise=True):
                with attempt:
                    await self._pace()
                    try:
                        return await self.client.get_json(path, params)
                    finally:
                        self._called()
        except RateLimited:
            raise GiveUp(f"CoinGecko still rate limits after {RATE_LIMITS_BEFORE_GIVING_UP} tries") from None
        except Retryable as exc:
            raise GiveUp(str(exc)) from None
        raise AssertionError("unreachable")
