"""Streamlit caches around dashboard.data: one MongoClient per process, query results for one refresh period."""

from __future__ import annotations

import datetime as dt
import math

import pandas as pd
import streamlit as st

from cryptoapp.settings import Settings
from dashboard import data

# The page waits this long for an answer (FerretDB reads a large collection slowly), then says so.
QUERY_TIME_LIMIT_S = 180
COINS_TTL_S = 60


@st.cache_resource(show_spinner=False)
def client(uri: str):
    """The process's MongoClient for `uri`: created once, shared by every session (never mutated)."""
    return data.connect(uri, query_timeout_s=QUERY_TIME_LIMIT_S)


def database(settings: Settings):
    return client(settings.mongo_uri)[settings.mongo_db]


def period_end(now: dt.datetime, period_s: float) -> dt.datetime:
    """`now` rounded up to the refresh period: every session in one period shares one query result."""
    stamp = math.ceil(now.timestamp() / period_s) * period_s
    return dt.datetime.fromtimestamp(stamp, tz=dt.timezone.utc)


@st.cache_data(ttl=COINS_TTL_S, max_entries=32, show_spinner=False)
def coins(uri: str, db_name: str) -> list[str]:
    return data.list_coins(client(uri)[db_name])


@st.cache_data(ttl=COINS_TTL_S, max_entries=32, show_spinner=False)
def server_profile(uri: str, db_name: str) -> tuple[bool, int | None]:
    """(whether the server downsamples, how many ticks are stored): what a query is going to cost."""
    db = client(uri)[db_name]
    return data.server_buckets(db), data.stored_ticks(db)


@st.cache_data(ttl=3600, max_entries=32, show_spinner=False)
def live(uri: str, db_name: str, coin_list: tuple[str, ...], end: dt.datetime) -> tuple[pd.DataFrame, pd.DataFrame]:
    return data.load_live(client(uri)[db_name], list(coin_list), now=end)


@st.cache_data(ttl=3600, max_entries=64, show_spinner=False)
def history(uri: str, db_name: str, ticker: str, hours: int, end: dt.datetime) -> pd.DataFrame:
    return data.load_history(client(uri)[db_name], ticker, hours, now=end)
