"""Page pieces the tabs share: the unreachable-server message, the empty-state sentence, the footer, the error guard,
the time-zone select."""

from __future__ import annotations

import contextlib
import datetime as dt
import logging

import pandas as pd
import streamlit as st

from cryptoapp.settings.dashboard import DashboardSettings
from cryptoapp.uris import mask_uri
from dashboard import cache, data, status, time_zones
from dashboard.chart_layout import SOURCE_NAMES
from dashboard.data import DataUnavailable, QueryTooSlow

log = logging.getLogger("dashboard")

START_WORKER = ("Start the worker with `make run` (live CoinGecko prices), or `make demo` offline "
                "(simulated prices), and wait one poll interval.")


def unreachable(settings: DashboardSettings, exc: DataUnavailable) -> str:
    return (f"Cannot reach MongoDB at {settings.server} (database `{settings.mongo_db}`): {exc}. "
            f"Start it with `make services` (or `scripts/services.sh up mongo`), or point MONGO_URI at "
            f"your server (now `{mask_uri(settings.mongo_uri)}`).")


MONGODB_ERROR = "mongodb_error"  # session state: the start-up ping's error, shown without a second ping


def mongodb_unreachable(settings: DashboardSettings) -> None:
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


def no_data(settings: DashboardSettings, what: str) -> str:
    return f"No {what} in database `{settings.mongo_db}` at {settings.server}. {START_WORKER}"


def views_missing(settings: DashboardSettings) -> bool:
    """Says so, and True, when the archive holds ticks but the serving views do not (an archive stored without
    them): every tab that reads the views shows this rather than "no prices yet"."""
    if not cache.archive_has_ticks(settings.mongo_uri, settings.mongo_db):
        return False
    st.info(status.views_missing(settings.mongo_db, settings.server))
    return True


def source_names(sources) -> str:
    return ", ".join(SOURCE_NAMES.get(s, s) for s in sources) or "—"


def footer(parts: list[str], query_ms: float | None) -> None:
    """Data sources, points shown and query time, in one small line."""
    if query_ms is not None:
        parts = [*parts, f"query {query_ms:,.0f} ms"]
    st.caption(" · ".join(parts))


def sources_of(frame: pd.DataFrame) -> list[str]:
    """The sources of a tick frame (`source`) or a bar frame (`sources` of each bar), sorted."""
    if "sources" in frame.columns:
        return sorted({s for sources in frame["sources"] for s in (sources or ())})
    return sorted(frame["source"].dropna().unique()) if "source" in frame.columns else []


@contextlib.contextmanager
def guarded(settings: DashboardSettings, what: str):
    """Known failures become one clear line; a bug is logged with its traceback and the page says where."""
    try:
        yield
    except QueryTooSlow as exc:
        st.warning(f"MongoDB at {settings.server} did not answer within {cache.QUERY_TIME_LIMIT_S} s ({exc}). "
                   "The dashboard reads one or two small documents per chart, so the server is stuck or "
                   "overloaded: check it with `make status`; the page tries again on its next refresh.")
    except DataUnavailable as exc:
        st.error(unreachable(settings, exc))
    except Exception:
        log.exception("the %s failed", what)
        st.error(f"The {what} failed unexpectedly; the details are in the dashboard's log "
                 "(.local/logs/dashboard.log when started by `make run`).")


def pipeline_status(settings: DashboardSettings) -> status.Status:
    """The workers' status as one line under the title: green, or what needs the user's attention."""
    now = dt.datetime.now(dt.timezone.utc)
    try:
        state = status.describe(cache.worker_status(settings.mongo_uri, settings.mongo_db), now)
    except DataUnavailable:
        return status.Status("error", ())
    marker = {"ok": ":green[●]", "warning": ":orange[●]", "error": ":red[●]"}[state.level]
    if state.lines:
        st.markdown(f"{marker} **Pipeline:** {state.text}")
    return state


TIME_ZONE = "tz"  # the select's key, and the URL's query parameter that keeps the choice (?tz=Asia/Tokyo)


def time_zone() -> str:
    """The time zone the charts show times in, chosen where this is called: UTC (the default), this browser's own zone
    next, then every named zone; kept in the URL. A chart gets it with time_zones.in_zone(fig, zone)."""
    zones = time_zones.choices(st.context.timezone)
    return st.selectbox("Time zone", zones, key=TIME_ZONE, bind="query-params",
                        help="Times on the chart's axis, in its hover and in the notes under it. UTC is the "
                             "default.")
