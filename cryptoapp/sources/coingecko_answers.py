"""CoinGecko's /simple/price (live) and /coins/{id}/market_chart/range (history): their queries, and their answers
read as PriceTicks; pure."""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import statistics
from typing import Any, Optional, Sequence

from cryptoapp.coins import Coin
from cryptoapp.prices.models import PriceTick
from cryptoapp.schema import COINGECKO, COINGECKO_BACKFILL, UTC, is_finite_number, iso_z

# The spacing market_chart/range gives its points, by span: up to a day ~5-minute points, up to 90 days hourly.
GRANULARITIES = {"5m": 300, "1h": 3600, "1d": 86400}
JUMP_LIMIT = 50.0  # a price 50x above or below the last one is a bad answer, not a market move
JUMP_REASON = f"over {JUMP_LIMIT:g}x away from the last one"


class SourceError(Exception):
    """One poll failed for a reason worth one log line (the message names it and the fix)."""


def simple_price_params(coins: tuple[Coin, ...]) -> dict[str, str]:
    return {
        "ids": ",".join(c.coin_id for c in coins),
        "vs_currencies": "usd",
        "include_market_cap": "true",
        "include_24hr_vol": "true",
        "include_24hr_change": "true",
        "include_last_updated_at": "true",
        "precision": "full",
    }


def _finite(value: Any) -> Optional[float]:
    """A JSON number as a float; None for null, booleans, strings, NaN and infinities (nothing is guessed)."""
    return float(value) if is_finite_number(value) else None


def parse_simple_price(
    payload: Any, coins: tuple[Coin, ...], fetched_at: dt.datetime,
    last_values: Optional[dict[str, float]] = None,
) -> tuple[list[PriceTick], dict[str, str]]:
    """Ticks for the coins in a /simple/price answer, and for each skipped coin the reason.

    Pure: nothing is invented; a coin without a usable price or time is skipped, optional
    numbers the answer lacks stay None.
    """
    if not isinstance(payload, dict):
        raise SourceError(f"CoinGecko answered JSON {type(payload).__name__}, not an object")
    ticks: list[PriceTick] = []
    skipped: dict[str, str] = {}
    for coin in coins:
        entry = payload.get(coin.coin_id)
        if not isinstance(entry, dict) or not entry:
            skipped[coin.ticker] = f"'{coin.coin_id}' is not in the answer (unknown to CoinGecko? check CRYPTO_SYMBOLS)"
            continue
        price = entry.get("usd")
        if not is_finite_number(price):
            skipped[coin.ticker] = f"price is {price!r}, not a number"
            continue
        if price <= 0:
            skipped[coin.ticker] = f"price {price!r} is not positive"
            continue
        last = (last_values or {}).get(coin.ticker)
        if last and not (1 / JUMP_LIMIT <= price / last <= JUMP_LIMIT):
            skipped[coin.ticker] = f"price {price!r} is {JUMP_REASON} ({last!r})"
            continue
        updated = entry.get("last_updated_at")
        if isinstance(updated, bool) or not isinstance(updated, (int, float)) or updated <= 0:
            skipped[coin.ticker] = f"last_updated_at is {updated!r}, not a Unix time"
            continue
        ticks.append(PriceTick(
            ticker=coin.ticker,
            timestamp=dt.datetime.fromtimestamp(int(updated), UTC),
            value=float(price),
            source=COINGECKO,
            currency="usd",
            volume_24h=_finite(entry.get("usd_24h_vol")),
            change_24h_pct=_finite(entry.get("usd_24h_change")),
            market_cap=_finite(entry.get("usd_market_cap")),
            fetched_at=fetched_at,
        ))
    return ticks, skipped


# --- history: /coins/{id}/market_chart/range ------------------------------------------------------------
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
    if not is_finite_number(value) or value <= 0:
        return None
    return int(value)


def _series(payload: dict, key: str) -> dict[int, float]:
    """A [[ms, number], ...] series as {ms: number}, unusable entries left out."""
    out = {}
    for item in payload.get(key) or []:
        if isinstance(item, (list, tuple)) and len(item) == 2:
            ms, number = _ms_time(item[0]), _finite(item[1])
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
        price = _finite(item[1]) if ms is not None else None
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
        source=COINGECKO_BACKFILL,
        currency="usd",
        volume_24h=volumes.get(ms),
        market_cap=caps.get(ms),
        granularity=granularity,
        fetched_at=fetched_at,
    ) for ms in times]
    return ticks, unusable
