"""The history tab's forecast panel: the forecast path and its band on the history chart where a model beats naive,
the "model vs naive" table, and in plain words when no model does.

The history tab calls it once, after building its chart and before drawing it:

    fig = history_charts.history_figure(frame, ...)
    fig = forecasts.render(settings, choice.coin, frame, fig, series=choice.series)
    st.plotly_chart(fig, ...)

The path and band go on the figure's first axes, the price panel of history_charts.history_figure, and the time
axis is widened to the last target drawn. The panel (the verdict, a sentence for each forecast not drawn, the table)
appears where render() is called. Forecasts are made from CoinGecko's series: on another series' chart (an exchange's) the
panel is shown and nothing is drawn. A failed read says so in one line and leaves the chart as it was.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from cryptoapp.settings.dashboard import DashboardSettings
from dashboard import cache, data, forecast_charts

READ_MINUTES = 120  # forecasts made in the last two hours are read: the newest bar's are among them
FORECASTS_TTL_S = 30  # the worker makes a forecast a minute per coin, model and horizon


@st.cache_data(ttl=FORECASTS_TTL_S, max_entries=32, show_spinner=False)
def load(uri: str, db_name: str, ticker: str, end: dt.datetime) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(forecasts made in the READ_MINUTES before `end`, scores) of `ticker`: data.load_forecasts, cached."""
    return data.load_forecasts(cache.client(uri)[db_name], ticker, since=end - dt.timedelta(minutes=READ_MINUTES))


def _in_window(forecasts: pd.DataFrame, frame: pd.DataFrame) -> pd.DataFrame:
    """The forecasts made inside the chart's window (frame.attrs start/end), so an old path is never drawn as now's."""
    start, end = frame.attrs.get("start"), frame.attrs.get("end")
    if forecasts.empty or start is None or end is None:
        return forecasts
    made = forecasts["made_at"] + forecast_charts.BAR
    return forecasts[(made >= pd.Timestamp(start)) & (made <= pd.Timestamp(end))]


def _reach(fig: go.Figure, until: pd.Timestamp) -> None:
    """Widens a fixed time axis (every panel's: they share it) so that it reaches `until`."""
    shown = fig.layout.xaxis.range
    if shown and shown[1] is not None and pd.Timestamp(shown[1]) < until:
        fig.update_xaxes(range=[shown[0], until])


def render(settings: DashboardSettings, ticker: str, frame: pd.DataFrame, fig: go.Figure, *, series: str | None = None
           ) -> go.Figure:
    """Adds `ticker`'s forecasts that beat naive to `fig` (its history chart, of the data in `frame`, whose
    attrs start and end are the window) and writes the forecast panel at the point of the call; returns `fig`.
    `series`: the series the chart shows (default: CoinGecko's, the ticker itself); forecasts are drawn on that one
    only."""
    end = cache.period_end(dt.datetime.now(dt.timezone.utc), settings.refresh)
    try:
        forecasts, scores = load(settings.mongo_uri, settings.mongo_db, ticker, end)
    except data.DataUnavailable as exc:
        st.caption(f"Forecasts not shown: MongoDB at {settings.server} did not answer ({exc}).")
        return fig
    if scores.empty:
        st.caption(f"Forecasts: none of {ticker} yet. " + (
            "The worker forecasts from CoinGecko's closed one-minute bars and judges each model against the naive "
            "“no change” forecast once it has scored 200 of them (at 60 min ahead: 600)."
            if settings.forecasts else "They are off (CRYPTO_FORECASTS=0)."))
        return fig
    drawn_here = series in (None, ticker)
    if drawn_here:
        shown = _in_window(forecasts, frame)
        forecast_charts.add_forecasts(fig, shown, scores)
        until = forecast_charts.drawn_until(shown, scores)
        if until is not None:
            _reach(fig, until)
    skilled = bool(scores["beats_naive"].any())
    (st.success if skilled else st.info)(forecast_charts.headline(ticker, scores))
    for sentence in forecast_charts.no_skill_sentences(scores):
        st.caption(sentence)
    st.dataframe(forecast_charts.score_table(scores), hide_index=True, width="stretch")
    as_of = scores["as_of"].max()
    st.caption("MAE in USD over each model's last scored points (its rolling window), beside the naive forecast's on "
               "the same points; hit rate: the share of moves whose direction the model called (naive calls none; a "
               "coin toss gets 50 %). Forecasts start at the close of each minute and are scored when their target "
               "minute closes" + ("" if pd.isna(as_of) else f"; the newest scored minute is {as_of:%Y-%m-%d %H:%M} UTC")
               + ("" if drawn_here or not skilled else "; they are made from CoinGecko's series: choose it as the "
                  "source to see them on the chart") + ".")
    return fig
