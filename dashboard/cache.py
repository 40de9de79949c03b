"""Streamlit caches around dashboard.data: one MongoClient per process, query results for one refresh period."""

from __future__ import annotations

import datetime as dt
import math

import pandas as pd
import streamlit as st

from cryptoapp.settings.dashboard import DashboardSettings
from dashboard import data

# Every read is one or two small view documents (milliseconds); a server that takes this long is stuck or overloaded,
# and the page says so instead of waiting on.
QUERY_TIME_LIMIT_S = 30
SERIES_TTL_S = 60


@st.cache_resource(show_spinner=False)
def client(uri: str):
    """The process's MongoClient for `uri`: created once, shared by every session (never mutated)."""
    return data.connect(uri, query_timeout_s=QUERY_TIME_LIMIT_S)


def database(settings: DashboardSettings):
    return client(settings.mongo_uri)[settings.mongo_db]


def period_end(now: dt.datetime, period_s: float) -> dt.datetime:
    """`now` rounded up to the refresh period: every session in one period shares one query result."""
    stamp = math.ceil(now.timestamp() / period_s) * period_s
    return dt.datetime.fromtimestamp(stamp, tz=dt.timezone.utc)


@st.cache_data(ttl=SERIES_TTL_S, max_entries=32, show_spinner=False)
def series(uri: str, db_name: str) -> pd.DataFrame:
    """The newest tick of every series (crypto.latest): which coins and which sources of each there are."""
    return data.latest(client(uri)[db_name])


@st.cache_data(ttl=3600, max_entries=32, show_spinner=False)
def live(uri: str, db_name: str, end: dt.datetime) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The newest tick of every series and their prices over the last 24 h, as of `end`."""
    db = client(uri)[db_name]
    return data.load_live(db, data.list_coins(db), now=end)


@st.cache_data(ttl=3600, max_entries=64, show_spinner=False)
def history(uri: str, db_name: str, series_id: str, hours: int, resolution: str, end: dt.datetime) -> pd.DataFrame:
    return data.load_history(client(uri)[db_name], series_id, hours, now=end, resolution=resolution)


@st.cache_data(ttl=3600, max_entries=64, show_spinner=False)
def firings(uri: str, db_name: str, ticker: str, since: dt.datetime, end: dt.datetime) -> list[dict]:
    """`ticker`'s alert firings since `since` (`end`: the refresh period the answer belongs to)."""
    return data.recent_firings(client(uri)[db_name], since=since, coin=ticker)


@st.cache_data(ttl=5, max_entries=8, show_spinner=False)
def worker_status(uri: str, db_name: str) -> list[dict]:
    return data.worker_status(client(uri)[db_name])


@st.cache_data(ttl=60, max_entries=8, show_spinner=False)
def archive_has_ticks(uri: str, db_name: str) -> bool:
    return data.archive_has_ticks(client(uri)[db_name])
