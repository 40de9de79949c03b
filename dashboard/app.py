"""`streamlit run dashboard/app.py`: real-time and historical crypto prices, read from MongoDB."""

import os

import streamlit as st

from cryptoapp.settings import ConfigError
from cryptoapp.settings.dashboard import load
from dashboard import alerts, analytics, cache, data, history, realtime, ui


def secrets() -> dict:
    """st.secrets as a plain mapping; empty when the app has no secrets.toml."""
    try:
        return dict(st.secrets)
    except FileNotFoundError:
        return {}


st.set_page_config(page_title="cryptoapp · prices", layout="wide")  # a page_icon would be fetched from a CDN
try:
    settings = load(os.environ, secrets())
except ConfigError as exc:
    st.error(str(exc))
    st.stop()

st.title("Crypto prices")
st.caption(f"MongoDB {settings.server} · database `{settings.mongo_db}` · live refresh every {settings.refresh:g} s "
           "· times in UTC")
try:
    data.ping(cache.client(settings.mongo_uri))
except data.DataUnavailable as exc:
    # The error, then a new try every refresh: the page comes back by itself once MongoDB answers.
    st.session_state[ui.MONGODB_ERROR] = exc
    st.fragment(ui.mongodb_unreachable, run_every=settings.refresh)(settings)
    st.stop()

# Only the open tab runs its queries; the tab is in the URL (?tab=History) so it can be linked.
live_tab, history_tab, alerts_tab, analytics_tab = st.tabs(["Real-time", "History", "Alerts", "Analytics"], key="tab",
                                                           bind="query-params")
with live_tab:
    if live_tab.open:
        realtime.render(settings)
with history_tab:
    if history_tab.open:
        history.render(settings)
with alerts_tab:
    if alerts_tab.open:
        alerts.render(settings)
with analytics_tab:
    if analytics_tab.open:
        analytics.render(settings)
