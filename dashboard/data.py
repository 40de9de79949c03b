"""The dashboard's MongoDB reads (the only dashboard module that imports pymongo): newest ticks, live series, history.

Nothing here imports streamlit, so the tests and the benchmark call these functions directly.
Caching is the UI's business (dashboard/cache.py): `st.cache_resource` holds one MongoClient per
process and `st.cache_data(ttl=...)` keeps query results for a refresh period.

Downsampling: a window may hold 600,000 ticks, the browser gets at most about `max_points`.
Servers with MongoDB's aggregation operators ($toLong, $mod, $avg in $group) bucket on the server,
so only the buckets travel. FerretDB 1.x implements none of them (its $group knows $count and
$sum only, measured): there the window's ticks are streamed with a projection and bucketed here,
which is what that server allows; docs/dashboard.md has the measured cost of both.
"""

from __future__ import annotations

import datetime as dt
import functools
import math
import re
import time
from collections.abc import Iterable, Sequence

import pandas as pd
from pymongo import ASCENDING, DESCENDING, MongoClient
from pymongo.database import Database
from pymongo.errors import OperationFailure, PyMongoError, ServerSelectionTimeoutError

from cryptoapp.schema import ANALYTICS_CORRELATION, ANALYTICS_DAILY, ANALYTICS_RUNS

UTC = dt.timezone.utc
COLLECTION = "prices"
# The worker declares this index; test seeding creates the same one.
INDEX = ([("sensor_id", ASCENDING), ("timestamp", ASCENDING)], "sensor_id_timestamp")
TICKER_RE = re.compile(r"^[A-Z0-9]{1,15}$")
MAX_HOURS = 168
DEFAULT_MAX_POINTS = 2000
DEFAULT_COINS = ("BTC", "ETH", "BNB", "USDT", "USDC")
NUMBERS = ("value", "volume_24h", "change_24h_pct", "market_cap", "bid_price", "ask_price")
TEXTS = ("sensor_id", "source", "granularity")
FIELDS = ("timestamp", *NUMBERS, *TEXTS)
PROJECTION = {"_id": 0, **{field: 1 for field in FIELDS}}
COLUMNS = (*FIELDS, "spread", "points")
BACKFILL = "coingecko-backfill"
SIMULATED = "simulated"
# Error codes of a server that lacks an aggregation stage or operator: NotImplemented (FerretDB),
# InvalidPipelineOperator, unknown $group accumulator, unrecognized stage (MongoDB).
_UNSUPPORTED = {238, 168, 15952, 40324}
# An empty collection the capability probe runs against: costs nothing on any server.
_PROBE_COLLECTION = "prices_capability_probe"
_server_buckets: dict[MongoClient, bool] = {}


class DataUnavailable(Exception):
    """MongoDB did not answer a query; the message is the driver's first line (it never holds a password)."""


class QueryTooSlow(DataUnavailable):
    """MongoDB did not answer within the time the page waits (the server may still be working on it)."""


def _reason(exc: PyMongoError) -> str:
    text = str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
    # The driver appends timeouts and a topology dump after the cause, which helps nobody here.
    text = re.split(r" \(configured timeouts|, Timeout: ", text)[0]
    return f"{exc.__class__.__name__}: {text[:240]}"


def _translated(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except PyMongoError as exc:
            # No server to ask is an outage, not a slow answer, although the driver counts it as a timeout.
            slow = exc.timeout and not isinstance(exc, ServerSelectionTimeoutError)
            raise (QueryTooSlow if slow else DataUnavailable)(_reason(exc)) from exc
    return wrapper


def connect(uri: str, timeout_ms: int = 3000, query_timeout_s: float | None = None) -> MongoClient:
    """A client that gives up on an unreachable server after `timeout_ms`, so the page can say so quickly.

    `query_timeout_s` bounds each wait for an answer (FerretDB ignores maxTimeMS, so the client keeps the
    limit); past it a query raises QueryTooSlow. It is a socket timeout, not `pymongo.timeout()`: inside
    that deadline the driver waits the whole of it for a server to select, not `timeout_ms`, and the live
    panel froze for minutes when MongoDB stopped as a refresh began. Reads are not retried for the same
    reason: a connection MongoDB drops fails the query at once, and the next refresh asks again.
    """
    return MongoClient(uri, tz_aware=True, serverSelectionTimeoutMS=timeout_ms, connectTimeoutMS=timeout_ms,
                       socketTimeoutMS=None if query_timeout_s is None else query_timeout_s * 1000,
                       retryReads=False, appname="cryptoapp-dashboard")


@_translated
def ping(client: MongoClient) -> None:
    client.admin.command("ping")


def check_ticker(ticker: object) -> str:
    """The ticker itself when it is one (A-Z, 0-9, up to 15); anything else never reaches a query."""
    if not isinstance(ticker, str) or not TICKER_RE.fullmatch(ticker):
        raise ValueError(f"{ticker!r} is not a ticker (1-15 capital letters or digits, e.g. BTC)")
    return ticker


def time_window(hours: float, now: dt.datetime | None = None) -> tuple[dt.datetime, dt.datetime]:
    """[now - hours, now] in UTC; hours between 1 and 168."""
    if not 1 <= hours <= MAX_HOURS:
        raise ValueError(f"the window is {hours!r} h: choose 1 to {MAX_HOURS} hours")
    end = now or dt.datetime.now(UTC)
    if end.tzinfo is None:
        raise ValueError("`now` needs a time zone (UTC)")
    # BSON dates keep milliseconds: a bound finer than that would be rounded by the server.
    end = end.astimezone(UTC).replace(microsecond=end.microsecond // 1000 * 1000)
    return end - dt.timedelta(hours=hours), end


def window_filter(tickers: str | Sequence[str], start: dt.datetime, end: dt.datetime) -> dict:
    """Ticks of one coin (or several) with start <= timestamp <= end; tickers are checked first."""
    if isinstance(tickers, (list, tuple)):
        coin: object = {"$in": [check_ticker(t) for t in tickers]}
    else:
        coin = check_ticker(tickers)
    return {"sensor_id": coin, "timestamp": {"$gte": start, "$lte": end}}


def bucket_seconds(start: dt.datetime, end: dt.datetime, max_points: int) -> int:
    """The whole-second bucket that cuts the window into at most `max_points` epoch-aligned buckets.

    A window rarely starts on a bucket boundary, so it touches one bucket more than it spans.
    """
    if max_points < 1:
        raise ValueError("max_points must be at least 1")
    return max(1, math.ceil((end - start).total_seconds() / max(1, max_points - 1)))


def bucket_pipeline(match: dict, bucket_s: int) -> list[dict]:
    """One row per coin, source and bucket of `bucket_s` seconds (aligned to the epoch): means, first time, count.

    Grouping by source keeps backfilled and live points apart, as the chart draws them apart.
    """
    millis = {"$toLong": "$timestamp"}
    bucket = {"$subtract": [millis, {"$mod": [millis, bucket_s * 1000]}]}
    return [
        {"$match": match},
        {"$group": {
            "_id": {"bucket": bucket, "sensor_id": "$sensor_id", "source": "$source"},
            "timestamp": {"$min": "$timestamp"},
            **{field: {"$avg": f"${field}"} for field in NUMBERS},
            "granularity": {"$max": "$granularity"},
            "points": {"$sum": 1},
        }},
        {"$sort": {"timestamp": 1}},
    ]


def frame_from_documents(docs: Iterable[dict]) -> pd.DataFrame:
    """Documents (or bucket rows) as a typed frame: UTC times, floats with NaN for null, text columns."""
    rows = []
    for doc in docs:
        key = doc.get("_id")
        rows.append({**doc, **key} if isinstance(key, dict) else doc)
    frame = pd.DataFrame(rows, columns=[c for c in COLUMNS if c != "spread"])
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True)
    for column in NUMBERS:
        # A non-number in the data shows as missing, never as a made-up value.
        frame[column] = pd.to_numeric(frame[column], errors="coerce").astype("float64")
    for column in TEXTS:
        frame[column] = frame[column].astype("object").where(frame[column].notna(), None)
    frame["points"] = pd.to_numeric(frame["points"], errors="coerce").fillna(1).astype("int64")
    frame["spread"] = frame["ask_price"] - frame["bid_price"]
    return frame[list(COLUMNS)].sort_values("timestamp", kind="stable").reset_index(drop=True)


def downsample(frame: pd.DataFrame, bucket_s: int) -> pd.DataFrame:
    """The same buckets as bucket_pipeline, made from raw ticks here (for servers that cannot)."""
    if frame.empty:
        return frame
    epoch = pd.Timestamp(0, tz="UTC")
    bucket = (frame["timestamp"] - epoch) // pd.Timedelta(seconds=bucket_s)
    grouped = frame.assign(bucket=bucket).groupby(["bucket", "sensor_id", "source"], sort=False, dropna=False)
    rows = grouped.agg(
        timestamp=("timestamp", "min"),
        **{field: (field, "mean") for field in NUMBERS},
        granularity=("granularity", "first"),
        points=("points", "sum"),
    ).reset_index()
    rows["spread"] = rows["ask_price"] - rows["bid_price"]
    return rows[list(COLUMNS)].sort_values("timestamp", kind="stable").reset_index(drop=True)


@_translated
def server_buckets(db: Database) -> bool:
    """Whether the server runs bucket_pipeline; asked once per server, on an empty collection."""
    known = _server_buckets.get(db.client)
    if known is None:
        try:
            list(db[_PROBE_COLLECTION].aggregate(bucket_pipeline({}, 60)))
            known = True
        except OperationFailure as exc:
            if exc.code not in _UNSUPPORTED:
                raise
            known = False
        _server_buckets[db.client] = known
    return known


def _find(db: Database, match: dict) -> pd.DataFrame:
    return frame_from_documents(db[COLLECTION].find(match, PROJECTION, sort=[("timestamp", ASCENDING)]))


def _load_window(db: Database, match: dict, bucket_s: int, max_points: int) -> tuple[pd.DataFrame, int, str | None]:
    """(rows, ticks in the window, where it was downsampled: "server", "client" or None for raw rows)."""
    if server_buckets(db):
        ticks = db[COLLECTION].count_documents(match)
        if ticks <= max_points:
            return _find(db, match), ticks, None
        return frame_from_documents(db[COLLECTION].aggregate(bucket_pipeline(match, bucket_s))), ticks, "server"
    raw = _find(db, match)
    if len(raw) <= max_points:
        return raw, len(raw), None
    return downsample(raw, bucket_s), len(raw), "client"


@_translated
def load_history(db: Database, ticker: str, hours: float, now: dt.datetime | None = None,
                 max_points: int = DEFAULT_MAX_POINTS) -> pd.DataFrame:
    """One coin's ticks in the `hours` before `now`, oldest first, ready to chart: at most about `max_points` rows.

    Raw ticks when the window holds at most `max_points`; otherwise one row per time bucket and
    source, with the mean of each number and `points` = ticks merged. `frame.attrs` tells how:
    ticks (in the window), bucket_s (0 for raw ticks), downsampled ("server", "client" or None),
    query_ms, start and end. Past the client's query timeout (connect()) it gives up with QueryTooSlow.
    """
    started = time.perf_counter()
    start, end = time_window(hours, now)
    match = window_filter(ticker, start, end)
    bucket_s = bucket_seconds(start, end, max_points)
    frame, ticks, where = _load_window(db, match, bucket_s, max_points)
    frame.attrs.update(ticks=ticks, bucket_s=bucket_s if where else 0, downsampled=where, start=start, end=end,
                       query_ms=(time.perf_counter() - started) * 1000)
    return frame


@_translated
def stored_ticks(db: Database) -> int | None:
    """How many ticks the collection holds, from its statistics (a count() would read them all on FerretDB)."""
    try:
        stats = list(db[COLLECTION].aggregate([{"$collStats": {"count": {}}}]))
    except OperationFailure:
        return None  # no statistics for this account or server: the page simply says less
    return int(stats[0]["count"]) if stats and "count" in stats[0] else 0


@_translated
def list_coins(db: Database) -> list[str]:
    """The tickers stored, the default coins first in their usual order; malformed names are left out."""
    found = {t for t in db[COLLECTION].distinct("sensor_id") if isinstance(t, str) and TICKER_RE.fullmatch(t)}
    return [t for t in DEFAULT_COINS if t in found] + sorted(found.difference(DEFAULT_COINS))


def _newest_each(db: Database, coins: Iterable[str]) -> pd.DataFrame:
    docs = []
    for coin in coins:
        doc = db[COLLECTION].find_one({"sensor_id": check_ticker(coin)}, PROJECTION, sort=[("timestamp", DESCENDING)])
        if doc is not None:
            docs.append(doc)
    return frame_from_documents(docs)


@_translated
def load_live(db: Database, coins: Sequence[str], now: dt.datetime | None = None, hours: float = 24,
              max_points: int = DEFAULT_MAX_POINTS) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(newest tick of each coin, all coins' ticks of the last `hours`, at most about `max_points` rows).

    On a server that buckets, the newest ticks come from one indexed query per coin. On one that
    cannot (FerretDB), every query reads the whole collection, so the newest ticks are taken from the
    window already read and only coins silent for longer than the window are asked for separately.
    """
    started = time.perf_counter()
    if not coins:
        empty = frame_from_documents([])
        return empty, empty
    start, end = time_window(hours, now)
    match = window_filter(list(coins), start, end)
    bucket_s = bucket_seconds(start, end, max(1, max_points // len(coins)))
    if server_buckets(db):
        latest = _newest_each(db, coins)
        series, ticks, where = _load_window(db, match, bucket_s, max_points)
    else:
        raw = _find(db, match)
        ticks, where = len(raw), None
        latest = raw.groupby("sensor_id", sort=False).tail(1)
        silent = [coin for coin in coins if coin not in set(latest["sensor_id"])]
        older = _newest_each(db, silent) if silent else latest.iloc[:0]
        if not older.empty:
            latest = older if latest.empty else pd.concat([latest, older], ignore_index=True)
        series = raw
        if len(raw) > max_points:
            series, where = downsample(raw, bucket_s), "client"
    order = {coin: i for i, coin in enumerate(coins)}
    latest = latest.sort_values("sensor_id", key=lambda s: s.map(order)).reset_index(drop=True)
    series.attrs.update(ticks=ticks, bucket_s=bucket_s if where else 0, downsampled=where, start=start, end=end,
                        query_ms=(time.perf_counter() - started) * 1000)
    return latest, series


# --- batch analytics (`make analytics`; docs/analytics.md): small collections, read whole -------------------

ANALYTICS_DAILY_COLUMNS = ("sensor_id", "date", "open", "high", "low", "close", "return", "volatility",
                           "volatility_annualized", "max_drawdown", "ticks", "minutes", "coverage", "returns_1m",
                           "first_tick", "last_tick", "sources")
ANALYTICS_CORRELATION_COLUMNS = ("frequency", "coin_a", "coin_b", "correlation", "observations", "start", "end")


@_translated
def load_analytics_run(db: Database) -> dict | None:
    """The newest analytics run's record (when computed and loaded, over how many ticks, coins, days); None before any."""
    return db[ANALYTICS_RUNS].find_one({}, {"_id": 0}, sort=[("computed_at", DESCENDING)])


@_translated
def load_analytics_daily(db: Database) -> pd.DataFrame:
    """Every coin's daily statistics (coins x days rows: a year of five coins is 1,825), by coin then date.

    `date` becomes a UTC timestamp at midnight; a statistic the run could not compute stays NaN."""
    frame = pd.DataFrame(list(db[ANALYTICS_DAILY].find({}, {"_id": 0})), columns=list(ANALYTICS_DAILY_COLUMNS))
    frame["date"] = pd.to_datetime(frame["date"], utc=True)
    for column in ("first_tick", "last_tick"):
        frame[column] = pd.to_datetime(frame[column], utc=True)
    for column in ANALYTICS_DAILY_COLUMNS[2:14]:
        frame[column] = pd.to_numeric(frame[column], errors="coerce").astype("float64")
    return frame.sort_values(["sensor_id", "date"], kind="stable").reset_index(drop=True)


@_translated
def load_analytics_correlation(db: Database) -> pd.DataFrame:
    """Every stored pair's correlation (both frequencies); an undefined one is NaN."""
    frame = pd.DataFrame(list(db[ANALYTICS_CORRELATION].find({}, {"_id": 0})),
                         columns=list(ANALYTICS_CORRELATION_COLUMNS))
    frame["correlation"] = pd.to_numeric(frame["correlation"], errors="coerce").astype("float64")
    return frame
