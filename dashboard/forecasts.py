"""The history tab's forecasts: the forecast path and its band on the history chart where a model beats naive, and
under the chart the verdict in one line, with the "model vs naive" table in an expander.

The history tab calls it twice, around drawing its chart:

    fig = history_charts.history_figure(frame, ...)
    shown = forecasts.draw(settings, choice.coin, frame, fig, series=choice.series)
    st.plotly_chart(fig, ...)
    forecasts.verdict(shown)

draw() puts the path and band on the figure's first axes, the price panel of history_charts.history_figure, and widens
the time axis to the last target drawn; it writes nothing on the page. verdict() writes the line and the expander where
it is called. Forecasts are made from CoinGecko's series: on another series' chart (an exchange's) nothing is drawn and
the line says where to see them. A failed read says so in one line and leaves the chart as it was.
"""

from __future__ import annotations

import dataclasses
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


@dataclasses.dataclass(frozen=True)
class Shown:
    """What draw() found, for verdict(): the scores (None when they could not be read, with the reason in `problem`)."""

    ticker: str
    scores: pd.DataFrame | None
    drawn_here: bool
    forecasts_on: bool = True
    problem: str | None = None


def draw(settings: DashboardSettings, ticker: str, frame: pd.DataFrame, fig: go.Figure, *, series: str | None = None
         ) -> Shown:
    """Adds `ticker`'s forecasts that beat naive to `fig` (its history chart, of the data in `frame`, whose attrs start
    and end are the window); writes nothing. `series`: the series the chart shows (default: CoinGecko's, the ticker
    itself); forecasts are drawn on that one only."""
    end = cache.period_end(dt.datetime.now(dt.timezone.utc), settings.refresh)
    drawn_here = series in (None, ticker)
    try:
        forecasts, scores = load(settings.mongo_uri, settings.mongo_db, ticker, end)
    except data.DataUnavailable as exc:
        return Shown(ticker, None, drawn_here, problem=f"Forecasts not shown: MongoDB at {settings.server} did not "
                                                       f"answer ({exc}).")
    if drawn_here and not scores.empty:
        shown = _in_window(forecasts, frame)
        forecast_charts.add_forecasts(fig, shown, scores)
        until = forecast_charts.drawn_until(shown, scores)
        if until is not None:
            _reach(fig, until)
    return Shown(ticker, scores, drawn_here, forecasts_on=settings.forecasts)


def verdict(shown: Shown) -> None:
    """The verdict in one line, then the scores behind it in an expander (closed)."""
    if shown.problem is not None:
        st.caption(shown.problem)
        return
    scores = shown.scores
    if scores.empty:
        st.caption(f"Forecasts: none of {shown.ticker} yet" + (
            " (each model is judged against the naive “no change” forecast once it has scored 200 of them)."
            if shown.forecasts_on else "; they are off (CRYPTO_FORECASTS=0)."))
        return
    skilled = bool(scores["beats_naive"].any())
    icon = ":material/trending_up:" if skilled else ":material/info:"
    st.markdown(f"{icon} {forecast_charts.verdict_line(shown.ticker, scores, shown.drawn_here)}")
    with st.expander("Forecast scores: each model beside the naive forecast"):
        st.dataframe(forecast_charts.score_table(scores), hide_index=True, width="stretch")
        as_of = scores["as_of"].max()
        st.caption("MAE in USD over each model's last scored points (its rolling window), beside the naive forecast's "
                   "on the same points; hit rate: the share of moves whose direction the model called (naive calls "
                   "none; a coin toss gets 50 %). A model is drawn when it beats naive by more than chance. Forecasts "
                   "start at the close of each minute and are scored when their target minute closes"
                   + ("" if pd.isna(as_of) else f"; the newest scored minute is {as_of:%Y-%m-%d %H:%M} UTC") + ".")
