"""The stored data's facts, declared once: collections, indexes, fields, _id formats, sources, tickers, gaps.

Pure (no driver, no Faust, no Streamlit): the worker, the dashboard, the benchmarks and the tests import
it, and nothing else re-declares what is here.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from typing import Any, Callable, Iterable, Optional, TypeVar

T = TypeVar("T")

UTC = dt.timezone.utc

# --- coins -------------------------------------------------------------------------------------------
TICKER_RE = re.compile(r"[A-Z0-9]{1,15}")
# A series id (series_id): a ticker, or <TICKER>_<source> for a source that is not CoinGecko's family (an exchange).
SERIES_RE = re.compile(r"[A-Z0-9]{1,15}(_[a-z0-9][a-z0-9.-]{0,39})?")
DEFAULT_SYMBOLS = ("bitcoin", "ethereum", "binancecoin", "tether", "usd-coin")
DEFAULT_TICKERS = ("BTC", "ETH", "BNB", "USDT", "USDC")  # the tickers of DEFAULT_SYMBOLS, in that order

# --- sources (the `source` field of a tick) ----------------------------------------------------------
COINGECKO = "coingecko"
COINGECKO_BACKFILL = "coingecko-backfill"  # history from market_chart/range, with a `granularity`
SIMULATED = "simulated"  # offline demo data; labelled as such wherever it is shown
EXCHANGE = "exchange"  # the CRYPTO_SOURCES name of the exchange stream; its ticks carry the exchange's id
SOURCES = (COINGECKO, SIMULATED, EXCHANGE)  # what CRYPTO_SOURCE and CRYPTO_SOURCES may name
# The exchanges whose trade messages cryptoapp/trades reads (Binance's `t T p q m`): their series' candles come
# from trades when CRYPTO_TRADES is on; any other exchange's come from its ticker, as before.
TRADE_EXCHANGES = frozenset({"binance", "binanceus"})
# Sources whose ticks keep the seed's `_id` (<TICKER>_<time>): CoinGecko's live and backfilled ticks of
# one moment are one observation, and the offline demo stands in for CoinGecko. Any other source
# (an exchange) puts its name in the `_id`, so no two sources' ticks ever share one.
SEED_ID_SOURCES = frozenset({COINGECKO, COINGECKO_BACKFILL, SIMULATED})

# --- collections and their indexes (keys as (field, 1 ascending | -1 descending)) ---------------------
PRICES = "prices"  # the archive: every tick, the system of record
PRICES_INDEXES = (((("sensor_id", 1), ("timestamp", 1)), "sensor_id_timestamp"),)
CANDLES = "candles"  # closed OHLC bars per series and resolution (_id: candle_id), kept by the stream
CANDLES_INDEXES = (((("series", 1), ("resolution", 1), ("start", 1)), "series_resolution_start"),)
# The serving views the dashboard reads, bounded whatever the archive holds (cryptoapp/candles/rings.py):
VIEWS = "views"    # per series, one ring of the newest bars per resolution and one of the newest ticks
VIEW_TAILS = "view_tails"  # per series, the newest ticks not yet folded into its ticks ring (candles/rings.py)
LATEST = "latest"  # per series, its newest tick (_id: the series)
STATUS = "status"  # per worker, its heartbeat and its sources' state (_id: host:web port)
ALERT_RULES = "alert_rules"
ALERTS = "alerts"  # every firing, inserted once with its final delivery state (cryptoapp/alerts/delivery.py)
ALERT_OUTBOX = "alert_outbox"  # the firings still to be delivered to a webhook: small, read and updated often
FORECASTS = "forecasts"
FORECAST_SCORES = "forecast_scores"
ANALYTICS_DAILY = "analytics_daily"
ANALYTICS_CORRELATION = "analytics_correlation"

# --- the stored tick (shared/DESIGN.md): its fields, declared here once ------------------------------
# The price, then the numbers a source may lack (None where it gives nothing, never made up).
TICK_NUMBERS = ("value", "volume_24h", "change_24h_pct", "market_cap", "bid_price", "ask_price", "bid_size", "ask_size")
OPTIONAL_TICK_NUMBERS = TICK_NUMBERS[1:]
TICK_TEXTS = ("sensor_id", "source", "granularity")
# What a bar or a view needs of a stored tick (candles verify and rebuild read only these).
BAR_FIELDS = ("timestamp", "currency", *TICK_NUMBERS, *TICK_TEXTS)
# Every field of a stored tick; `granularity` only on backfilled ticks.
TICK_FIELDS = ("_id", *BAR_FIELDS, "inserted_at")


def is_finite_number(value: Any) -> bool:
    """True for an int or float that is a real number: not a bool, not NaN, not infinite (what a source may send
    where a price belongs is checked by this one rule everywhere)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


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


def series_id(ticker: str, source: str) -> str:
    """The series a tick belongs to, kept apart from every other: the ticker for CoinGecko (live, backfilled)
    and the demo, `<TICKER>_<source>` for any other source (an exchange), e.g. BTC_binanceus."""
    return ticker if source in SEED_ID_SOURCES else f"{ticker}_{source}"


def parse_series_id(series: str) -> tuple[str, Optional[str]]:
    """A series id taken apart, series_id's inverse: "BTC" -> ("BTC", None) (CoinGecko's or the demo's series),
    "BTC_binanceus" -> ("BTC", "binanceus"). A ticker has no underscore, so the first one ends it."""
    ticker, underscore, source = series.partition("_")
    return ticker, source if underscore else None


def is_series_id(value: object) -> bool:
    """True for what series_id makes: a ticker, or <TICKER>_<source> with a source name in lower case."""
    return isinstance(value, str) and SERIES_RE.fullmatch(value) is not None


def tick_id(ticker: str, timestamp: dt.datetime, source: str = COINGECKO) -> str:
    """The deterministic `_id`: BTC_2025-11-21T10:00:00Z for CoinGecko (and the demo), else with the source
    in it, e.g. BTC_binanceus_2025-11-21T10:00:00.123Z."""
    return f"{series_id(ticker, source)}_{iso_z(timestamp)}"


def replaces(new_granularity: Optional[str], held_granularity: Optional[str]) -> bool:
    """The archive's rule for two ticks of one _id: history (a tick with a granularity: backfilled, or the demo's)
    never replaces another tick; a live tick replaces what is held. The sink, the candles and the views follow it."""
    return new_granularity is None or held_granularity is not None


def one_tick_per_id(items: Iterable[T], tick_of: Callable[[T], Any] = lambda item: item) -> dict[str, T]:
    """The item of each tick _id that the archive keeps by `replaces` (the last live tick, else the last
    backfilled one), keyed by _id in the order the _ids first came; `tick_of` finds an item's tick (it has
    `tick_id` and `granularity`), by default the item is the tick. The store and the sink both follow it."""
    kept: dict[str, T] = {}
    for item in items:
        tick = tick_of(item)
        held = kept.get(tick.tick_id)
        if held is None or replaces(tick.granularity, tick_of(held).granularity):
            kept[tick.tick_id] = item
    return kept


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
# How long crypto.candles keeps the bars of each resolution (days; None: always), as RRD archives consolidate: the
# minute bars of a year would be as many as the archive's ticks, and no chart draws them past a day and a half.
CANDLE_RETENTION_DAYS = {"1m": 7, "5m": 90, "1h": None, "1d": None}
# A stored candle: the bar of `sensor_id` at `resolution` that starts at `start` (UTC, aligned to the
# epoch); `sources` are the sources whose ticks made it, `volume_24h` the last tick's.
CANDLE_FIELDS = ("_id", "sensor_id", "resolution", "start", "open", "high", "low", "close", "ticks",
                 "volume_24h", "sources", "currency", "updated_at")

# A candle made from an exchange's trades adds `provenance` and these; `provenance` says what made a bar: the
# ticks of a series (CoinGecko's, or an exchange's ticker without trades), its trades, or the exchange's own klines
# (a minute the trade stream missed, repaired by `cryptoapp candles verify --against-exchange`).
TRADE_BAR_FIELDS = ("volume", "quote_volume", "trades", "vwap", "first_trade_id", "last_trade_id")
PROVENANCES = ("ticks", "trades", "exchange-klines")


def bar_start(ts: dt.datetime, resolution: str) -> dt.datetime:
    """The start of the bar of `resolution` that holds `ts` (bars are aligned to the Unix epoch, UTC)."""
    seconds = RESOLUTIONS[resolution]
    whole = int(ts.astimezone(UTC).timestamp() // seconds * seconds)
    return dt.datetime.fromtimestamp(whole, UTC)


def candle_id(series: str, resolution: str, start: dt.datetime) -> str:
    """BTC_5m_2025-11-21T10:05:00Z: one bar of one series (series_id) at one resolution."""
    return f"{series}_{resolution}_{iso_z(start)}"


# --- forecasts ---------------------------------------------------------------------------------------
# A forecast: what `model` predicted at `made_at` (the start of the 1-minute bar whose close it starts
# from) for the close of the bar starting at `target_at` = made_at + horizon_min minutes; the band is
# null until the model has enough scored errors to derive it from. A score: one model's measured error
# at one horizon for one coin, beside the naive "no change" forecast's on the same points.
FORECAST_NAIVE = "naive"  # the no-change baseline every model is scored against
FORECASTS_INDEXES = (((("sensor_id", 1), ("made_at", 1)), "sensor_id_made_at"),)
FORECAST_FIELDS = ("_id", "sensor_id", "model", "horizon_min", "made_at", "target_at", "base_close",
                   "predicted_close", "band_low", "band_high", "band_level", "band_points")
FORECAST_SCORE_FIELDS = ("_id", "sensor_id", "model", "horizon_min", "as_of", "window", "min_points",
                         "points", "mae", "naive_mae", "direction_points", "hit_rate", "band_points",
                         "band_coverage", "total_points", "total_mae", "total_naive_mae",
                         "total_direction_points", "total_hit_rate", "expired", "advantage_t", "beats_naive",
                         "verdict")


def forecast_score_id(ticker: str, model: str, horizon_min: int) -> str:
    """BTC_linear_5m: the score of one model at one horizon for one coin (rewritten in place)."""
    return f"{ticker}_{model}_{horizon_min}m"


def forecast_id(ticker: str, model: str, horizon_min: int, made_at: dt.datetime) -> str:
    """BTC_linear_5m_2025-11-21T10:05:00Z: one forecast, made from the bar starting at `made_at`."""
    return f"{forecast_score_id(ticker, model, horizon_min)}_{iso_z(made_at)}"


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
