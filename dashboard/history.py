"""The history tab: one coin over a window of 1 to 168 hours, a chosen metric, a trend line, PNG and CSV downloads."""

from __future__ import annotations

import datetime as dt
import functools

import pandas as pd
import streamlit as st

from cryptoapp.settings import Settings
from dashboard import cache, charts, ui
from dashboard.data import MAX_HOURS

TRENDS = {"none": None, "15 min average": 0.25, "1 h average": 1, "6 h average": 6, "24 h average": 24}
PNG_SIZE = (1400, 700)
CSV_COLUMNS = ["timestamp", "sensor_id", "value", "volume_24h", "change_24h_pct", "market_cap", "bid_price",
               "ask_price", "spread", "source", "granularity", "points"]


def controls(coin_list: list[str]) -> tuple[str, int, str, float | None]:
    left, middle, right, trend_column = st.columns([1, 2, 1, 1])
    ticker = left.selectbox("Coin", coin_list, key="history_coin")
    hours = middle.slider("Window (hours before now)", 1, MAX_HOURS, 24, key="history_hours")
    metric = right.selectbox("Metric", list(charts.METRICS), key="history_metric")
    trends = [name for name, h in TRENDS.items() if h is None or h < hours]
    trend = trend_column.selectbox("Trend line", trends, key="history_trend")
    return ticker, hours, metric, TRENDS.get(trend)


def downloads(frame: pd.DataFrame, fig, ticker: str, metric: str, hours: int) -> None:
    """The chart as PNG (drawn on click, by Chromium) and the data shown as CSV."""
    stem = f"{ticker}-{metric.replace(' ', '_').replace('/', '-')}-{hours}h"
    png, csv, note = st.columns([1, 1, 3])
    if charts.chromium_path() is None:
        note.caption("PNG download needs Chromium: `apt-get install chromium` (or set BROWSER_PATH).")
    else:
        png.download_button("Chart as PNG", data=functools.partial(charts.figure_png, fig, *PNG_SIZE),
                            file_name=f"{stem}.png", mime="image/png", icon=":material/image:",
                            on_click="ignore", key="history_png")
    csv.download_button("Data as CSV", data=frame[CSV_COLUMNS].to_csv(index=False, date_format="%Y-%m-%dT%H:%M:%S.%fZ"),
                        file_name=f"{stem}.csv", mime="text/csv", icon=":material/download:",
                        on_click="ignore", key="history_csv")


def render(settings: Settings) -> None:
    with ui.guarded(settings, "history tab"):
        coin_list = cache.coins(settings.mongo_uri, settings.mongo_db)
        if not coin_list:
            st.info(ui.no_data(settings, "prices yet"))
            return
        ticker, hours, metric, trend_hours = controls(coin_list)
        end = cache.period_end(dt.datetime.now(dt.timezone.utc), settings.refresh)
        with st.spinner(f"Reading {ticker}'s last {hours} h…{ui.slow_server_note(settings)}", show_time=True):
            frame = cache.history(settings.mongo_uri, settings.mongo_db, ticker, hours, end)
        start, end = frame.attrs["start"], frame.attrs["end"]
        spec = charts.METRICS[metric]
        if frame.empty:
            st.info(f"No {ticker} ticks between {start:%Y-%m-%d %H:%M} and {end:%Y-%m-%d %H:%M} UTC (the last "
                    f"{hours} h) in database `{settings.mongo_db}` at {settings.server}. {ui.START_WORKER} "
                    "Or widen the window.")
        elif frame[spec.column].isna().all():
            st.info(f"The {len(frame):,} {ticker} points of the last {hours} h have no {spec.label.lower()}: "
                    "the source did not send it (CoinGecko gives no bid/ask). Pick another metric.")
        else:
            fig = charts.history_figure(frame, ticker, metric, settings.interval, trend_hours, start, end)
            st.plotly_chart(fig, key="history_chart", config={"displaylogo": False}, theme=None)
            downloads(frame, fig, ticker, metric, hours)
        ui.footer(frame)
