"""The history tab: one coin and source over 1 to 168 hours (a slider and 1 H / 24 H / 7 D buttons), candlesticks or a
line at a chosen or automatic resolution, volume and indicators, linear or log price, in UTC or a chosen time zone;
the chart first, the forecasts' verdict under it, PNG and CSV downloads; coin, window, resolution and zone in the URL."""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools

import pandas as pd
import streamlit as st

from cryptoapp.settings.dashboard import DashboardSettings
from dashboard import (alert_tables, cache, charts, export, forecasts, history_charts, image_export, indicators,
                       resolution, time_zones, ui)
from dashboard.frames import MAX_HOURS, RESOLUTION_CHOICES

PNG_SIZE = (1400, 900)
MODES = {"Candlesticks": resolution.CANDLES, "Line": resolution.LINE}
DEFAULT_INDICATORS = (indicators.SMA, indicators.BOLLINGER)


@dataclasses.dataclass(frozen=True)
class Choice:
    coin: str
    series: str
    name: str
    currency: str
    hours: int
    resolution: str
    mode: str
    indicators: tuple[str, ...]
    periods: indicators.Periods
    log_y: bool = False
    zone: str = time_zones.UTC


# The keys of the widgets that make a view are also its URL's query parameters (?coin=ETH&hours=6&resolution=1m&tz=...):
# Streamlit keeps them in the URL (st.query_params), restores them from a shared link, and drops a value that is not
# one of the choices, so a bad link opens the default view.
COIN, HOURS, RESOLUTION = "coin", "hours", "resolution"
DEFAULT_HOURS = 24
RANGES = {"1 H": 1, "24 H": 24, "7 D": MAX_HOURS}


def _set_hours(hours: int) -> None:
    st.session_state[HOURS] = hours


def _series_row(latest: pd.DataFrame, names: dict[str, str]) -> tuple[str, pd.DataFrame, str, int]:
    """Coin, source, window (a slider and the range buttons beside it)."""
    coins = list(dict.fromkeys(latest["sensor_id"]))
    coin_column, source_column, window_column, range_column = st.columns([1, 1, 2, 1], vertical_alignment="bottom")
    coin = coin_column.selectbox("Coin", coins, key=COIN, bind="query-params")
    rows = latest[latest["sensor_id"] == coin]
    series = source_column.selectbox("Source", list(rows["series"]), format_func=lambda s: names.get(s, s),
                                     key=f"history_source_{coin}",
                                     help="CoinGecko's prices (live and backfilled) or an exchange's quotes: each "
                                          "is a series of its own, never mixed into one line.")
    hours = window_column.slider("Window (hours before now)", 1, MAX_HOURS, DEFAULT_HOURS, key=HOURS,
                                 bind="query-params")
    with range_column.container(horizontal=True, gap="small"):
        for label, span in RANGES.items():
            st.button(label, key=f"range_{span}", on_click=_set_hours, args=(span,), help=f"The last {label}",
                      type="primary" if hours == span else "secondary")
    return coin, rows, series, hours


def _periods() -> indicators.Periods:
    with st.popover("Periods", help="Indicator periods, in points: bars, or ticks"):
        columns = st.columns(4)
        return indicators.Periods(
            sma=int(columns[0].number_input("SMA", 2, 500, 20, key="period_sma")),
            ema=int(columns[1].number_input("EMA", 2, 500, 50, key="period_ema")),
            bollinger=int(columns[2].number_input("Bollinger", 2, 500, 20, key="period_bollinger")),
            rsi=int(columns[3].number_input("RSI", 2, 500, 14, key="period_rsi")),
        )


def controls(latest: pd.DataFrame) -> Choice:
    names = charts.series_names(latest)
    coin, rows, series, hours = _series_row(latest, names)
    resolution_column, mode_column, indicator_column, periods_column, scale_column, zone_column = st.columns(
        [0.9, 1.1, 1.8, 0.8, 0.8, 1], vertical_alignment="bottom")
    chosen = resolution_column.selectbox("Resolution", RESOLUTION_CHOICES, key=RESOLUTION, bind="query-params",
                                         help="auto: raw ticks while they fit in one chart, else the finest bars "
                                              "that do (candlesticks always use bars).")
    mode = mode_column.radio("Chart", list(MODES), horizontal=True, key="history_mode")
    ticked = indicator_column.multiselect("Indicators (TA-Lib)", indicators.INDICATORS, default=DEFAULT_INDICATORS,
                                          key="history_indicators")
    with periods_column:
        periods = _periods()
    log_y = scale_column.toggle("Log scale", key="history_log")
    with zone_column:
        zone = ui.time_zone()
    row = rows[rows["series"] == series].iloc[0]
    return Choice(coin, series, names.get(series, series), row["currency"] or "usd", hours, chosen, MODES[mode],
                  tuple(ticked), periods, log_y, zone)


def downloads(frame: pd.DataFrame, lines, fig, choice: Choice) -> None:
    """The chart as PNG (drawn on click, by Chromium) and the data shown as CSV."""
    used = frame.attrs.get("resolution", "ticks")
    stem = f"{choice.series}-{used}-{choice.hours}h"
    png, csv, note = st.columns([1, 1, 3])
    if image_export.chromium_path() is None:
        note.caption("PNG download needs Chromium: `apt-get install chromium` (or set BROWSER_PATH).")
    else:
        png.download_button("Chart as PNG", data=functools.partial(image_export.figure_png, fig, *PNG_SIZE),
                            file_name=f"{stem}.png", mime="image/png", icon=":material/image:",
                            on_click="ignore", key="history_png")
    csv.download_button("Data as CSV", data=export.csv(frame, lines), file_name=f"{stem}.csv", mime="text/csv",
                        icon=":material/download:", on_click="ignore", key="history_csv")


def load(settings: DashboardSettings, choice: Choice, end: dt.datetime) -> tuple[pd.DataFrame, int | None]:
    """The frame to draw, and the number of bars found when auto candlesticks fell back to the ticks."""
    asked = resolution.requested(choice.resolution, choice.mode, choice.hours)
    frame = cache.history(settings.mongo_uri, settings.mongo_db, choice.series, choice.hours, asked, end)
    if resolution.needs_ticks(frame, choice.resolution, choice.mode):
        ticks = cache.history(settings.mongo_uri, settings.mongo_db, choice.series, choice.hours, "ticks", end)
        if not ticks.empty:
            return ticks, len(frame)
    return frame, None


def render(settings: DashboardSettings) -> None:
    """The controls, then the chart, the forecasts' verdict in one line under it, the downloads and the notes."""
    with ui.guarded(settings, "history tab"):
        latest = cache.series(settings.mongo_uri, settings.mongo_db)
        if latest.empty:
            if not ui.views_missing(settings):
                st.info(ui.no_data(settings, "prices yet"))
            return
        choice = controls(latest)
        now = dt.datetime.now(dt.timezone.utc)
        frame, too_few_bars = load(settings, choice, cache.period_end(now, settings.refresh))
        start, end = frame.attrs["start"], frame.attrs["end"]
        if frame.empty:
            st.info(f"No {choice.coin} ({choice.name}) data between {resolution.when(start, choice.zone)} and "
                    f"{resolution.when(end, choice.zone)} (the last {choice.hours} h) in database "
                    f"`{settings.mongo_db}` at {settings.server}. "
                    f"{ui.START_WORKER} Or widen the window.")
            return
        bars = history_charts.is_bars(frame)
        close = frame["close"] if bars else frame["value"]
        lines = indicators.compute(close, choice.indicators, choice.periods)
        fired = cache.firings(settings.mongo_uri, settings.mongo_db, choice.coin, start, end)
        fig = history_charts.history_figure(frame, choice.coin, choice.name,
                                            mode=choice.mode if bars else resolution.LINE, lines=lines,
                                            interval_s=settings.interval, start=start, end=end,
                                            currency=choice.currency, layers=[alert_tables.firing_layer(fired)],
                                            log_y=choice.log_y)
        shown = forecasts.draw(settings, choice.coin, frame, fig, series=choice.series)
        fig = time_zones.in_zone(fig, choice.zone)
        st.plotly_chart(fig, key="history_chart", config={"displaylogo": False}, theme=None)
        forecasts.verdict(shown)
        downloads(frame, lines, fig, choice)
        notes(frame, choice, close, too_few_bars, now)


def notes(frame: pd.DataFrame, choice: Choice, close: pd.Series, too_few_bars: int | None, now: dt.datetime) -> None:
    """Under the chart: the resolution drawn and why, what the window reaches, points too few for an indicator, the
    sources and counts."""
    bars = history_charts.is_bars(frame)
    st.caption(resolution.explain(frame, choice.resolution, choice.mode, choice.hours, too_few_bars))
    for note in (resolution.reach_note(frame, choice.coin, choice.name, choice.resolution, choice.zone),
                 resolution.newest_note(frame, now, choice.zone)):
        if note:
            st.info(note, icon=":material/info:")
    short = indicators.too_short(close, choice.indicators, choice.periods)
    if short:
        st.caption("Not enough points yet for " + ", ".join(f"{name} (needs {n})" for name, n in short.items())
                   + f": the chart has {int(close.notna().sum())}. Widen the window or pick a finer resolution.")
    what = "bars" if bars else "ticks"
    from_trades = bars and history_charts.own_volume(frame)
    shown = f"{len(frame):,} {what} shown"
    if bars and frame.attrs.get("ticks") is not None:
        shown += f" (made of {frame.attrs['ticks']:,} {'trades' if from_trades else 'ticks'})"
    parts = [f"Source: {ui.source_names(ui.sources_of(frame))}", shown]
    if from_trades:
        parts.append("volume: what was traded in each bar, in the quote currency, from the exchange's trades; the line "
                     "is each bar's VWAP")
    elif bars:
        parts.append("volume: the source's rolling 24 h volume at each bar's close, not the volume traded in the bar")
    ui.footer(parts, frame.attrs.get("query_ms"))
    if choice.indicators:
        st.caption(f"Indicators computed by TA-Lib on the {'closes' if bars else 'prices'} shown; each starts once it "
                   "has its period of points.")
