"""Page pieces both tabs use: the unreachable-server message, the empty-state sentence, the footer, the error guard."""

from __future__ import annotations

import contextlib
import logging

import pandas as pd
import streamlit as st

from cryptoapp.settings import Settings
from cryptoapp.uris import mask_uri
from dashboard import cache, data, formatting
from dashboard.charts import SOURCE_NAMES
from dashboard.data import DataUnavailable, QueryTooSlow

log = logging.getLogger("dashboard")
# Above this many stored ticks a server that cannot filter by time keeps the user waiting visibly.
SLOW_SCAN_TICKS = 50_000

START_WORKER = ("Start the worker with `make run` (live CoinGecko prices), or `make demo` offline "
                "(simulated prices), and wait one poll interval.")


def unreachable(settings: Settings, exc: DataUnavailable) -> str:
    return (f"Cannot reach MongoDB at {settings.server} (database `{settings.mongo_db}`): {exc}. "
            f"Start it with `make services` (or `scripts/services.sh up mongo`), or point MONGO_URI at "
            f"your server (now `{mask_uri(settings.mongo_uri)}`).")


MONGODB_ERROR = "mongodb_error"  # session state: the start-up ping's error, shown without a second ping


def mongodb_unreachable(settings: Settings) -> None:
    """The page while MongoDB cannot be reached (a fragment rerun every refresh): the error, or the whole
    page again once the server answers."""
    error = st.session_state.pop(MONGODB_ERROR, None)
    if error is None:  # a timed rerun: try again
        try:
            data.ping(cache.client(settings.mongo_uri))
        except DataUnavailable as exc:
            error = exc
        else:
            st.rerun(scope="app")
    st.error(unreachable(settings, error))
    st.caption(f"Trying again every {settings.refresh:g} s; the page comes back by itself once MongoDB answers.")


def slow_server_note(settings: Settings) -> str:
    """A warning for servers that read every stored tick on every query (FerretDB 1.x), when that is many."""
    buckets, stored = cache.server_profile(settings.mongo_uri, settings.mongo_db)
    if buckets or not stored or stored < SLOW_SCAN_TICKS:
        return ""
    return (f" This server cannot filter by time or downsample, so every query reads all {stored:,} stored "
            "ticks; that takes a while (docs/dashboard.md).")


def no_data(settings: Settings, what: str) -> str:
    return f"No {what} in database `{settings.mongo_db}` at {settings.server}. {START_WORKER}"


def footer(frame: pd.DataFrame, sources: list[str] | None = None) -> None:
    """Data sources, points shown and query time, in one small line."""
    attrs = frame.attrs
    if sources is None:
        sources = sorted(frame["source"].dropna().unique())
    names = [SOURCE_NAMES.get(s, s) for s in sources]
    shown = f"{len(frame):,} points shown"
    ticks = attrs.get("ticks")
    if attrs.get("downsampled"):
        place = "on the server" if attrs["downsampled"] == "server" else "in the dashboard (the server cannot)"
        shown += (f" (means of {formatting.duration(attrs['bucket_s'])} buckets of {ticks:,} ticks, "
                  f"downsampled {place})")
    parts = [f"Source: {', '.join(names) or '—'}", shown]
    if attrs.get("query_ms") is not None:
        parts.append(f"query {attrs['query_ms']:,.0f} ms")
    st.caption(" · ".join(parts))


@contextlib.contextmanager
def guarded(settings: Settings, what: str):
    """Known failures become one clear line; a bug is logged with its traceback and the page says where."""
    try:
        yield
    except QueryTooSlow as exc:
        st.warning(f"MongoDB at {settings.server} did not answer within {cache.QUERY_TIME_LIMIT_S} s ({exc})."
                   f"{slow_server_note(settings)} Try a shorter window, or a server with an index it uses "
                   "(mongod).")
    except DataUnavailable as exc:
        st.error(unreachable(settings, exc))
    except Exception:
        log.exception("the %s failed", what)
        st.error(f"The {what} failed unexpectedly; the details are in the dashboard's log "
                 "(.local/logs/dashboard.log when started by `make run`).")
