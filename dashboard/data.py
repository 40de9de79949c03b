"""The dashboard's MongoDB reads (the only dashboard module that imports pymongo): the serving views, never the archive.

Every read costs what the page shows, on day 1 as on day 365: the newest tick of each series (crypto.latest, one
document a series) and one ring document per chart (crypto.views: the newest ~2,000 ticks or bars of a series at
one resolution, kept by the worker; cryptoapp/candles/rings.py). Nothing here imports streamlit, so the tests and
the benchmarks call these functions directly; caching is dashboard/cache.py's business.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
import time
from collections.abc import Sequence

import pandas as pd
from pymongo import ASCENDING, DESCENDING, MongoClient
from pymongo.database import Database
from pymongo.errors import PyMongoError, ServerSelectionTimeoutError

from cryptoapp.alerts import queries as rule_queries
from cryptoapp.candles.rings import view_id
from cryptoapp.candles.view_docs import with_tail
from cryptoapp.schema import (
    ALERT_OUTBOX, ALERT_RULES, ALERTS, ANALYTICS_CORRELATION, ANALYTICS_DAILY, ANALYTICS_RUNS, DEFAULT_TICKERS,
    FORECAST_FIELDS, FORECAST_SCORE_FIELDS, FORECAST_SCORES, FORECASTS, LATEST, PRICES, SEED_ID_SOURCES, STATUS,
    TICKER_RE, VIEW_TAILS, VIEWS)
from dashboard.frames import (
    ANALYTICS_CORRELATION_COLUMNS, ANALYTICS_DAILY_COLUMNS, LIVE_HOURS, MAX_POINTS, RESOLUTION_CHOICES, bars_in,
    check_series, check_ticker, coins_of, covers, fitting_resolution, oldest_held, tick_frame, ticks_in, time_window,
    typed)


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

    `query_timeout_s` bounds each wait for an answer; past it a query raises QueryTooSlow. It is a socket timeout,
    not `pymongo.timeout()`: inside that deadline the driver waits the whole of it for a server to select, and the
    live panel froze when MongoDB stopped as a refresh began. Reads are not retried for the same reason: the next
    refresh asks again.
    """
    return MongoClient(uri, tz_aware=True, serverSelectionTimeoutMS=timeout_ms, connectTimeoutMS=timeout_ms,
                       socketTimeoutMS=None if query_timeout_s is None else query_timeout_s * 1000,
                       retryReads=False, appname="cryptoapp-dashboard")


@_translated
def ping(client: MongoClient) -> None:
    client.admin.command("ping")


# --- the views ----------------------------------------------------------------------------------------------------

@_translated
def latest(db: Database) -> pd.DataFrame:
    """The newest tick of every series (crypto.latest: one document a series), default coins first."""
    frame = tick_frame(db[LATEST].find({}, {"inserted_at": 0}))
    # A boolean mask of its own dtype: an empty object-dtype mask would select columns (none) instead of rows.
    frame = frame.loc[frame["sensor_id"].map(lambda t: isinstance(t, str) and bool(TICKER_RE.fullmatch(t))).astype(bool)]
    order = {t: i for i, t in enumerate(DEFAULT_TICKERS)}
    frame = frame.assign(_order=frame["sensor_id"].map(lambda t: order.get(t, len(order))),
                         _own=frame["source"].map(lambda s: s not in SEED_ID_SOURCES))
    return frame.sort_values(["_order", "sensor_id", "_own", "series"]).drop(columns=["_order", "_own"]) \
        .reset_index(drop=True)


@_translated
def archive_has_ticks(db: Database) -> bool:
    """Whether crypto.prices holds a tick: one document asked for, only when the views hold none (to say why)."""
    return db[PRICES].find_one({}, {"_id": 1}) is not None


@_translated
def worker_status(db: Database) -> list[dict]:
    """Every worker's status document (crypto.status: one per worker, a handful of documents)."""
    return list(db[STATUS].find({}))


@_translated
def list_coins(db: Database) -> list[str]:
    """The tickers stored, the default coins first in their usual order; malformed names are left out."""
    return coins_of(latest(db))


def _view(db: Database, series: str, kind: str) -> dict | None:
    """One view document (a ring) with its tail (its newest changes, a small document): two reads by _id."""
    ident = view_id(check_series(series), kind)
    doc = db[VIEWS].find_one({"_id": ident})
    return with_tail(doc, db[VIEW_TAILS].find_one({"_id": ident})) if doc else doc


@_translated
def load_history(db: Database, series: str, hours: float, now: dt.datetime | None = None,
                 resolution: str = "auto", max_points: int = MAX_POINTS) -> pd.DataFrame:
    """One series over the `hours` before `now`: raw ticks while they fit, else bars of the finest resolution that
    does (or the `resolution` asked for). One or two view documents read, whatever the archive holds.

    `frame.attrs`: resolution ("ticks" or a bar resolution), start, end, query_ms, ticks (in the window, when
    known), and held_from (the oldest time the view holds, so the page can say the window reaches past it).
    """
    started = time.perf_counter()
    if resolution not in RESOLUTION_CHOICES:
        raise ValueError(f"resolution {resolution!r}: choose one of {', '.join(RESOLUTION_CHOICES)}")
    start, end = time_window(hours, now)
    frame = None
    if resolution in ("auto", "ticks"):
        doc = _view(db, series, "ticks")
        ticks = ticks_in(doc, start, end)
        if resolution == "ticks" or (covers(doc, start) and len(ticks) <= max_points):
            frame, used, held_from, count = ticks, "ticks", oldest_held(doc, 1000), len(ticks)
    if frame is None:
        used = fitting_resolution(hours, max_points) if resolution in ("auto", "ticks") else resolution
        doc = _view(db, series, used)
        frame = bars_in(doc, start, end)
        held_from, count = oldest_held(doc, 1), int(frame["ticks"].sum()) if len(frame) else 0
    frame.attrs.update(resolution=used, start=start, end=end, held_from=held_from, ticks=count,
                       query_ms=(time.perf_counter() - started) * 1000)
    return frame


@_translated
def load_live(db: Database, coins: Sequence[str], now: dt.datetime | None = None,
              hours: float = LIVE_HOURS) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(newest tick of each series of `coins`, their prices over the last `hours`): each series' recent ticks when
    its view holds the whole window, else its 5-minute closes. Reads: crypto.latest once, one or two views a series.
    """
    started = time.perf_counter()
    wanted = [check_ticker(c) for c in coins]
    newest = latest(db)
    newest = newest[newest["sensor_id"].isin(wanted)].reset_index(drop=True)
    start, end = time_window(hours, now)
    parts = []
    for series, source in zip(newest["series"], newest["source"]):
        doc = _view(db, series, "ticks")
        if covers(doc, start):
            ticks = ticks_in(doc, start, end)
            part = pd.DataFrame({"timestamp": ticks["timestamp"], "value": ticks["value"], "source": ticks["source"],
                                 "resolution": "ticks"})
        else:
            bars = bars_in(_view(db, series, "5m"), start, end)
            part = pd.DataFrame({"timestamp": bars["timestamp"], "value": bars["close"], "source": source,
                                 "resolution": "5m"})
        parts.append(part.assign(sensor_id=newest.loc[newest["series"] == series, "sensor_id"].iloc[0], series=series))
    columns_ = ["timestamp", "sensor_id", "series", "value", "source", "resolution"]
    series_frame = pd.concat(parts, ignore_index=True)[columns_] if parts else pd.DataFrame(columns=columns_)
    series_frame["timestamp"] = pd.to_datetime(series_frame["timestamp"], utc=True)
    series_frame["value"] = pd.to_numeric(series_frame["value"], errors="coerce").astype("float64")
    series_frame = series_frame.sort_values(["series", "timestamp"], kind="stable").reset_index(drop=True)
    series_frame.attrs.update(start=start, end=end, query_ms=(time.perf_counter() - started) * 1000)
    return newest, series_frame


# --- alerts: rules (crypto.alert_rules) and firings (crypto.alerts, and those still being delivered in
# crypto.alert_outbox); cryptoapp.alerts.rules builds and checks the documents. The rules and the outbox are small;
# crypto.alerts holds one document per firing for CRYPTO_ALERT_RETENTION_DAYS, which FerretDB scans per read.
RECENT_FIRINGS = 50
# A firing's webhook holds a secret and the page never needs it: it is not even read.
FIRING_PROJECTION = {"webhook": 0, "owner": 0, "lease_until": 0}


@_translated
def list_rules(db: Database) -> list[dict]:
    """Every rule document, oldest first."""
    return rule_queries.oldest_first(db[ALERT_RULES].find(rule_queries.every_rule()))


@_translated
def add_rule(db: Database, doc: dict) -> None:
    """Stores a new rule document (AlertRule.to_document())."""
    db[ALERT_RULES].insert_one(doc)


@_translated
def set_rule_enabled(db: Database, rule_id: str, enabled: bool, now: dt.datetime) -> bool:
    """Pauses or resumes a rule (updated_at moves, so the worker's poll sees it); False when it is gone."""
    return db[ALERT_RULES].update_one(rule_queries.rule_by_id(rule_id),
                                      rule_queries.set_enabled(enabled, now)).matched_count == 1


@_translated
def delete_rule(db: Database, rule_id: str) -> bool:
    return db[ALERT_RULES].delete_one(rule_queries.rule_by_id(rule_id)).deleted_count == 1


@_translated
def recent_firings(db: Database, limit: int = RECENT_FIRINGS, since: dt.datetime | None = None,
                   coin: str | None = None) -> list[dict]:
    """The newest firings first (at most `limit`), optionally since a time and of one coin; without webhooks.

    Finished firings come from crypto.alerts, those still being delivered (`pending`) from crypto.alert_outbox."""
    match: dict = {}
    if since is not None:
        match["fired_at"] = {"$gte": since}
    if coin is not None:
        match["coin"] = check_ticker(coin)
    found = {}
    for collection in (ALERTS, ALERT_OUTBOX):  # a firing in both is between the two writes: the finished one wins
        for doc in db[collection].find(match, FIRING_PROJECTION, sort=[("fired_at", DESCENDING)], limit=limit):
            found.setdefault(doc["_id"], doc)
    return sorted(found.values(), key=lambda d: d["fired_at"], reverse=True)[:limit]

@_translated
def last_fired(db: Database, rule_ids: Sequence[str]) -> dict[str, dt.datetime]:
    """rule id -> when it last fired (in crypto.alerts, or still being delivered); a rule that never fired is absent.

    One newest-first read of one document per rule and collection: FerretDB 1.24 has neither $max nor $first in
    $group, and reading every firing to find each rule's newest would cost the whole retention on every page."""
    last: dict[str, dt.datetime] = {}
    for rule_id in rule_ids:
        for collection in (ALERTS, ALERT_OUTBOX):
            doc = db[collection].find_one({"rule_id": rule_id}, {"fired_at": 1}, sort=[("fired_at", DESCENDING)])
            if doc is not None and (rule_id not in last or doc["fired_at"] > last[rule_id]):
                last[rule_id] = doc["fired_at"]
    return last


# --- forecasts (written by the worker's forecasting agent, cryptoapp/forecasts) -------------------------
_FORECAST_TIMES = ("made_at", "target_at")
_SCORE_TEXTS = ("sensor_id", "model", "verdict")


@_translated
def load_forecasts(db: Database, ticker: str, since: dt.datetime | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(`ticker`'s forecasts made at or after `since`, oldest first; its scores, one row per model and horizon).

    The worker keeps `crypto.forecasts` to the last hours and `crypto.forecast_scores` to one document per
    coin, model and horizon, so both reads stay small. Empty frames when the worker has written none.
    """
    match: dict = {"sensor_id": check_ticker(ticker)}
    if since is not None:
        match["made_at"] = {"$gte": since}
    forecasts = pd.DataFrame(list(db[FORECASTS].find(match, {"_id": 0}, sort=[("made_at", ASCENDING)])),
                             columns=list(FORECAST_FIELDS[1:]))
    scores = pd.DataFrame(list(db[FORECAST_SCORES].find({"sensor_id": ticker}, {"_id": 0})),
                          columns=list(FORECAST_SCORE_FIELDS[1:]))
    forecasts = typed(forecasts, _FORECAST_TIMES, ("sensor_id", "model"))
    scores = typed(scores, ("as_of",), _SCORE_TEXTS)
    scores = scores.sort_values(["horizon_min", "model"], kind="stable").reset_index(drop=True)
    return forecasts.sort_values("made_at", kind="stable").reset_index(drop=True), scores


# --- batch analytics (`make analytics`; docs/analytics.md): small collections, read whole -------------------

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
