"""Marks on the history chart's price panel (no streamlit): the up/down legend of the candles, the last price on the
right axis, and where the bars change from single ticks (drawn as dots) to full candles."""

from __future__ import annotations

import math

import pandas as pd
import plotly.graph_objects as go

from dashboard import formatting
from dashboard.chart_layout import DOWN, FLAT, UP

MIN_RUN = 3  # bars in a row before a change of density is marked: one full bar among dots is no change
MAX_MARKS = 3  # a window that flips back and forth says so at its first changes, not at every one
SPARSE, FULL = "sparse", "full"
CANDLE_RANK = 1  # the legend lists the candles first, their up/down colours next, then the rest (plotly's rank: 1000)


def up_down_legend(fig: go.Figure) -> None:
    """Two legend entries that say what the candles' colours mean (candles have one entry per trace, not per colour)."""
    for name, color in (("up bar: close above open", UP), ("down bar: close below open", DOWN)):
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="markers", name=name, hoverinfo="skip",
                                 legendrank=CANDLE_RANK + 1, marker={"symbol": "square", "size": 11, "color": color}),
                      row=1, col=1)


def last_price(frame: pd.DataFrame, column: str) -> tuple[float, str] | None:
    """The newest price drawn and its colour: green when it is above the bar's open (ticks, or a bar of one tick: the
    price before it), red when below, grey when level; None when nothing is drawn."""
    rows = frame.dropna(subset=[column])
    if rows.empty:
        return None
    value = float(rows[column].iloc[-1])
    before = rows["open"].iloc[-1] if "open" in rows.columns else value
    if before == value and len(rows) > 1:
        before = rows[column].iloc[-2]
    color = FLAT if pd.isna(before) or value == before else UP if value > before else DOWN
    return value, color


def draw_last_price(fig: go.Figure, frame: pd.DataFrame, column: str, currency: str | None, log_y: bool) -> None:
    """A dotted line across the price panel at the newest price, and the price in a tag on its right edge."""
    last = last_price(frame, column)
    if last is None:
        return
    value, color = last
    fig.add_shape(type="line", xref="x domain", x0=0, x1=1, yref="y", y0=value, y1=value,
                  line={"color": color, "width": 1, "dash": "dot"})
    # An annotation on a log axis is placed at the log of its value (a shape is not).
    y = math.log10(value) if log_y and value > 0 else value
    fig.add_annotation(xref="x domain", x=1, xanchor="left", yref="y", y=y, yanchor="middle", showarrow=False,
                       text=formatting.price(value, currency), bgcolor=color, font={"color": "white", "size": 11},
                       borderpad=3, name="last price")


def density_changes(frame: pd.DataFrame) -> list[tuple[pd.Timestamp, str]]:
    """Where the bars turn from single ticks (open = high = low = close: a dot) to bars of several ticks, or back: the
    start of the first bar of each new run of MIN_RUN bars or more, and what the bars are from there on."""
    if "ticks" not in frame.columns or frame.empty:
        return []
    rows = frame.sort_values("timestamp", kind="stable")
    kinds = [SPARSE if t <= 1 else FULL for t in rows["ticks"].fillna(0)]
    times = rows["timestamp"].tolist()
    runs: list[tuple[int, int]] = []  # (start, length) of each run of one kind
    for i, kind in enumerate(kinds):
        if runs and kinds[runs[-1][0]] == kind:
            runs[-1] = (runs[-1][0], runs[-1][1] + 1)
        else:
            runs.append((i, 1))
    long = [(start, kinds[start]) for start, length in runs if length >= MIN_RUN]
    changes = [(times[start], kind) for (_, before), (start, kind) in zip(long, long[1:]) if kind != before]
    return changes[:MAX_MARKS]


def mark_density_changes(fig: go.Figure, frame: pd.DataFrame) -> None:
    """A vertical line on the price panel at each density change, saying what the bars are on each side."""
    for at, kind in density_changes(frame):
        text = "← one tick a bar (dots) · full bars →" if kind == FULL else "← full bars · one tick a bar (dots) →"
        fig.add_shape(type="line", x0=at, x1=at, xref="x", yref="y domain", y0=0, y1=1,
                      line={"color": FLAT, "width": 1, "dash": "dash"})
        fig.add_annotation(x=at, xref="x", y=1, yref="y domain", yanchor="bottom", showarrow=False, text=text,
                           font={"size": 11, "color": FLAT}, bgcolor="rgba(255,255,255,0.8)", name="density change")
