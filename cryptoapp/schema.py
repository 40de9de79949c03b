"""The stored data's facts, declared once: collections, indexes, fields, _id formats, sources, tickers, gaps.

Pure (no driver, no Faust, no Streamlit): the worker, the dashboard, the benchmarks and the tests import
it, and nothing else re-declares what is here.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Optional

UTC = dt.timezone.utc

# --- coins -------------------------------------------------------------------------------------------
TICKER_RE = re.compile(r"[A-Z0-9]{1,15}")
DEFAULT_SYMBOLS = ("bitcoin", "ethereum", "binancecoin", "tether", "usd-coin")
DEFAULT_TICKERS = ("BTC", "ETH", "BNB", "USDT", "USDC")  # the tickers of DEFAULT_SYMBOLS, in that order

# --- sources (the `source` field of a tick) ----------------------------------------------------------
COINGECKO = "coingecko"
COINGECKO_BACKFILL = "coingecko-backfill"  # history from market_chart/range, with a `granularity`
SIMULATED = "simulated"  # offline demo data; labelled as such wherever it is shown
# Sources whose ticks keep the seed's `_id` (<TICKER>_<time>): CoinGecko's live and backfilled ticks of
# one moment are one observation, and the offline demo stands in for CoinGecko. Any other source
# (an exchange) puts its name in the `_id`, so no two sources' ticks ever share one.
SEED_ID_SOURCES = frozenset({COINGECKO, COINGECKO_BACKFILL, SIMULATED})

# --- collections and their indexes (keys as (field, 1 ascending | -1 descending)) ---------------------
PRICES = "prices"  # the archive: every tick, the system of record
PRICES_INDEXES = (((("sensor_id", 1), ("timestamp", 1)), "sensor_id_timestamp"),)
CANDLES = "candles"  # OHLC bars per coin and resolution, kept by the stream
ALERT_RULES = "alert_rules"
ALERTS = "alerts"
FORECASTS = "forecasts"
FORECAST_SCORES = "forecast_scores"
ANALYTICS_DAILY = "analytics_daily"
ANALYTICS_CORRELATION = "analytics_correlation"

# --- the stored tick (shared/DESIGN.md) --------------------------------------------------------------
TICK_NUMBERS = ("value", "volume_24h", "change_24h_pct", "market_cap", "bid_price", "ask_price")
TICK_TEXTS = ("sensor_id", "source", "granularity")
# Every field of a stored tick; `granularity` only on backfilled ticks.
TICK_FIELDS = ("_id", "timestamp", "value", "sensor_id", "bid_price", "ask_price", "volume_24h",
               "change_24h_pct", "market_cap", "currency", "source", "inserted_at", "granularity")


def iso_z(ts: dt.datetime) -> str:
    """ISO-8601 in UTC with a Z; milliseconds only when the time has them (BSON dates keep ms)."""
    ts = ts.astimezone(UTC)
    if ts.microsecond // 1000:
        return ts.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond // 1000:03d}Z"
    return ts.strftime("%Y-%m-%dT%H:%M:%SZ")


def bson_time(ts: dt.datetime) -> dt.datetime:
    """The time as MongoDB stores it: UTC, whole milliseconds."""
    ts = ts.astimezone(UTC)
    return ts.replace(microsecond=ts.microsecond // 1000 * 1000)


def tick_id(ticker: str, timestamp: dt.datetime, source: str = COINGECKO) -> str:
    """The deterministic `_id`: BTC_2025-11-21T10:00:00Z for CoinGecko (and the demo), else with the source
    in it, e.g. BTC_binanceus_2025-11-21T10:00:00.123Z."""
    if source in SEED_ID_SOURCES:
        return f"{ticker}_{iso_z(timestamp)}"
    return f"{ticker}_{source}_{iso_z(timestamp)}"


# --- the gap rule and the granularity rule ----------------------------------------------------------
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
# A hole shorter than two of CoinGecko's finest history steps (5 min) may hold none of its points: the
# backfill would ask for it on every run and add nothing, and the chart would shade it.
MIN_GAP_S = 600


def granularity_seconds(label: Optional[str]) -> int:
    """'5m' -> 300, '1h' -> 3600; 0 for a live tick (no label) or a label not understood."""
    match = re.fullmatch(r"(\d+)([smhd])", label) if isinstance(label, str) else None
    return int(match.group(1)) * _UNIT_SECONDS[match.group(2)] if match else 0


def gap_threshold(interval_s: float, *granularities: Optional[str], bucket_s: float = 0) -> float:
    """Seconds without a tick that make a gap: two poll intervals, two steps of the neighbouring backfilled
    series or chart buckets (filled history is as dense as the source gave it), never under MIN_GAP_S.
    The backfill fills exactly the holes the chart shades."""
    return max(2 * interval_s, MIN_GAP_S, 2 * bucket_s, *(2 * granularity_seconds(g) for g in granularities))


# --- candles -----------------------------------------------------------------------------------------
RESOLUTIONS = {"1m": 60, "5m": 300, "1h": 3600, "1d": 86400}  # bar length in seconds, finest first
# A stored candle: the bar of `sensor_id` at `resolution` that starts at `start` (UTC, aligned to the
# epoch); `sources` are the sources whose ticks made it, `volume_24h` the last tick's.
CANDLE_FIELDS = ("_id", "sensor_id", "resolution", "start", "open", "high", "low", "close", "ticks",
                 "volume_24h", "sources", "currency", "updated_at")


def bar_start(ts: dt.datetime, resolution: str) -> dt.datetime:
    """The start of the bar of `resolution` that holds `ts` (bars are aligned to the Unix epoch, UTC)."""
    seconds = RESOLUTIONS[resolution]
    whole = int(ts.astimezone(UTC).timestamp() // seconds * seconds)
    return dt.datetime.fromtimestamp(whole, UTC)


def candle_id(ticker: str, resolution: str, start: dt.datetime) -> str:
    """BTC_5m_2025-11-21T10:05:00Z: one bar of one coin at one resolution."""
    return f"{ticker}_{resolution}_{iso_z(start)}"

# --- batch analytics (cryptoapp/analytics, docs/analytics.md) ------------------------------------------
ANALYTICS_RUNS = "analytics_runs"  # one document per `make analytics` run: when, over what, how long


def analytics_daily_id(ticker: str, day: dt.date) -> str:
    """BTC_2025-11-21: one coin's statistics of one UTC day in analytics_daily."""
    return f"{ticker}_{day.isoformat()}"


def analytics_correlation_id(frequency: str, ticker_a: str, ticker_b: str) -> str:
    """daily_BTC_ETH: the correlation of two coins' returns at one frequency (the pair in sorted order)."""
    first, second = sorted((ticker_a, ticker_b))
    return f"{frequency}_{first}_{second}"


# Error codes of a server that lacks an aggregation stage or operator: NotImplemented (FerretDB),
# InvalidPipelineOperator, unknown $group accumulator, unrecognized stage (MongoDB).
UNSUPPORTED_AGGREGATION_CODES = frozenset({238, 168, 15952, 40324})
