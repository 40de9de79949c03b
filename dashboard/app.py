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
PAGES = {"Real-time": realtime, "History": history, "Alerts": alerts, "Analytics": analytics}
for tab, page in zip(st.tabs(list(PAGES), key="tab", bind="query-params"), PAGES.values()):
    with tab:
        if tab.open:
            page.render(settings)
