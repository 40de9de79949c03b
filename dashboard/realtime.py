"""The real-time tab: a card per coin and live price and 24 h volume charts, refreshed every DASHBOARD_REFRESH seconds."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import streamlit as st

from cryptoapp.schema import SIMULATED
from cryptoapp.settings import Settings
from dashboard import alerts, cache, charts, formatting, ui

CARDS_PER_ROW = 5
STALE_AFTER_INTERVALS = 3


def is_stale(tick_time: dt.datetime, now: dt.datetime, interval_s: float) -> bool:
    """A coin is stale when its newest tick is older than three poll intervals."""
    return (now - tick_time).total_seconds() > STALE_AFTER_INTERVALS * interval_s


def card(tick: pd.Series, now: dt.datetime, interval_s: float) -> None:
    """Price, 24 h change (coloured, with an arrow), 24 h volume and the tick's age for one coin."""
    with st.container(border=True):
        st.metric(tick["sensor_id"], formatting.price(tick["value"]))
        st.markdown(f"{formatting.change(tick['change_24h_pct'])} &nbsp;24 h")
        st.markdown(f"Volume 24 h: **{formatting.money(tick['volume_24h'])}**")
        when = tick["timestamp"].to_pydatetime()
        badges = []
        if tick["source"] == SIMULATED:
            badges.append(":orange-badge[simulated data]")
        if is_stale(when, now, interval_s):
            badges.append(":red-badge[stale]")
        st.caption(f"updated {formatting.age(when, now)} " + " ".join(badges))


def _live_panel(settings: Settings) -> None:
    with ui.guarded(settings, "real-time tab"):
        alerts.recent_badge(settings)
        now = dt.datetime.now(dt.timezone.utc)
        coin_list = cache.coins(settings.mongo_uri, settings.mongo_db)
        if not coin_list:
            st.info(ui.no_data(settings, "prices yet"))
            return
        latest, series = cache.live(settings.mongo_uri, settings.mongo_db, tuple(coin_list),
                                    cache.period_end(now, settings.refresh))
        if (latest["source"] == SIMULATED).any():
            st.warning("Simulated data: prices marked *simulated* come from `make demo`'s random walk, "
                       "not from a market.", icon=":material/science:")
        for first in range(0, len(latest), CARDS_PER_ROW):
            row = latest.iloc[first:first + CARDS_PER_ROW]
            for column, (_, tick) in zip(st.columns(CARDS_PER_ROW), row.iterrows()):
                with column:
                    card(tick, now, settings.interval)
        silent = [c for c in coin_list if c not in set(latest["sensor_id"])]
        if silent:
            st.caption(f"No ticks at all for {', '.join(silent)}.")
        left, right = st.columns([3, 2])
        with left:
            if series.empty:
                st.info(f"No ticks in the last 24 h. {ui.START_WORKER}")
            else:
                st.plotly_chart(charts.live_prices_figure(series, coin_list, settings.interval,
                                                          series.attrs.get("start"), series.attrs.get("end")),
                                key="live_prices", config={"displaylogo": False}, theme=None)
        with right:
            st.plotly_chart(charts.volume_figure(latest), key="live_volume", config={"displaylogo": False}, theme=None)
        ui.footer(series, sorted(set(latest["source"].dropna()) | set(series["source"].dropna())))
        st.caption(f"Refreshes every {settings.refresh:g} s; zoom and pan are kept.{ui.slow_server_note(settings)} "
                   f"A coin is marked stale when its newest tick is older than {STALE_AFTER_INTERVALS} × "
                   f"CRYPTO_INTERVAL ({formatting.duration(STALE_AFTER_INTERVALS * settings.interval)}).")


def render(settings: Settings) -> None:
    # Only this panel reruns on the timer; the rest of the page (and the user's widgets) stay put.
    st.fragment(_live_panel, run_every=settings.refresh)(settings)
