"""What the dashboard's plotly figures share (no streamlit): colours, style, the fitted time axis, shaded gaps."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
import plotly.graph_objects as go

from cryptoapp.schema import COINGECKO, COINGECKO_BACKFILL, SIMULATED, gap_threshold
from dashboard.indicators import MACD, RSI

UP, DOWN, FLAT = "#15803d", "#b91c1c", "#64748b"
LIVE, BACKFILLED, SIMULATED_COLOR, TREND = "#0369a1", "#38bdf8", "#c2410c", "#334155"
# Candles are green when they close up and red when they close down, in every series: live bars in full colour,
# backfilled bars pale (history CoinGecko sent at 5 min to 1 d steps), simulated bars hollow (green and red outlines,
# a faint fill), named as simulated in the legend and the title so they never pass for market prices.
UP_FAINT, DOWN_FAINT = "rgba(21, 128, 61, 0.18)", "rgba(185, 28, 28, 0.18)"
CANDLE_COLORS = {  # kind -> ((up line, up fill), (down line, down fill))
    "live": ((UP, UP), (DOWN, DOWN)),
    "backfill": (("#4ade80", "#4ade80"), ("#f87171", "#f87171")),
    "simulated": ((UP, UP_FAINT), (DOWN, DOWN_FAINT)),
}
EXCHANGE_COLORS = ("#7c3aed", "#b45309", "#047857", "#be185d", "#0e7490")
COIN_COLORS = ("#0369a1", "#7c3aed", "#b45309", "#047857", "#be185d", "#0e7490", "#4d7c0f", "#6d28d9")
INDICATOR_COLORS = {"SMA": "#334155", "EMA": "#d97706", "Bollinger bands": "#6366f1", RSI: "#7c3aed",
                    MACD: "#0369a1"}
VOLUME_COLOR = "#93c5fd"
GAP_FILL = "#94a3b8"
GRID = "#e0f2fe"
# Above this many points a trace is drawn with WebGL: SVG slows down visibly past a few thousand.
WEBGL_POINTS = 1000
SOURCE_NAMES = {COINGECKO: "CoinGecko (live)", SIMULATED: "simulated data (not market prices)",
                COINGECKO_BACKFILL: "CoinGecko backfill"}
VOLUME_PANEL = "volume"
VOLUME_NOTE = "24 h volume at bar close"  # what the sources give: a rolling 24 h sum, not the bar's own volume


Span = tuple[pd.Timestamp, pd.Timestamp]


def fitted_range(first: pd.Timestamp, last: pd.Timestamp, start: pd.Timestamp | None, end: pd.Timestamp | None,
                 min_pad_s: float = 5.0) -> Span:
    """The time axis: the window [start, end] where the data reaches its edges, else the data with a margin, so one
    minute of prices fills the chart instead of a sliver at the edge of a 24 h axis."""
    first, last = pd.Timestamp(first), pd.Timestamp(last)
    pad = max((last - first) * 0.03, pd.Timedelta(seconds=min_pad_s))
    if start is None or end is None:
        return first - pad, last + pad
    start, end = pd.Timestamp(start), pd.Timestamp(end)
    near = (end - start) * 0.02  # within 2 % of the window, the data counts as reaching the edge
    lo = start if first - start <= near else first - pad
    hi = end if end - last <= near else last + pad
    return lo, hi


def _granularities(rows: pd.DataFrame) -> list:
    return rows["granularity"].tolist() if "granularity" in rows.columns else [None] * len(rows)


def _thresholds(rows: pd.DataFrame, interval_s: float, bucket_s: float) -> list[float]:
    """For each row and the next, the seconds between them that make a gap (cryptoapp.schema.gap_threshold)."""
    labels = _granularities(rows)
    return [gap_threshold(interval_s, a, b, bucket_s=bucket_s) for a, b in zip(labels, labels[1:])]


def gap_spans(frame: pd.DataFrame, interval_s: float, bucket_s: float = 0,
              start: pd.Timestamp | None = None, end: pd.Timestamp | None = None) -> list[Span]:
    """Time spans the backfill calls gaps (cryptoapp.schema.gap_threshold); the window's edges count when given."""
    if frame.empty:
        return [(pd.Timestamp(start), pd.Timestamp(end))] if start is not None and end is not None else []
    rows = frame.sort_values("timestamp", kind="stable")
    times = rows["timestamp"].tolist()
    labels = _granularities(rows)
    spans = []
    if start is not None and (times[0] - pd.Timestamp(start)).total_seconds() > \
            gap_threshold(interval_s, labels[0], bucket_s=bucket_s):
        spans.append((pd.Timestamp(start), times[0]))
    for i, limit in enumerate(_thresholds(rows, interval_s, bucket_s)):
        if (times[i + 1] - times[i]).total_seconds() > limit:
            spans.append((times[i], times[i + 1]))
    if end is not None and (pd.Timestamp(end) - times[-1]).total_seconds() > \
            gap_threshold(interval_s, labels[-1], bucket_s=bucket_s):
        spans.append((times[-1], pd.Timestamp(end)))
    return spans


def with_breaks(frame: pd.DataFrame, rows: pd.DataFrame, column: str, interval_s: float, bucket_s: float,
                 extra: Sequence[str] = ()) -> tuple[list, list, list[list]]:
    """x, y (and `extra` columns) of `rows`, a part of `frame`, with a None wherever the series has a gap or rows of
    another part lie between two of these, so no line is drawn across them."""
    position = pd.Series(range(len(frame)), index=frame.index)[rows.index].tolist()
    limits = _thresholds(rows, interval_s, bucket_s)
    times, values = rows["timestamp"].tolist(), rows[column].tolist()
    columns = [rows[c].tolist() for c in extra]
    xs, ys, more = [], [], [[] for _ in extra]
    for i, (t, v) in enumerate(zip(times, values)):
        if i and ((t - times[i - 1]).total_seconds() > limits[i - 1] or position[i] != position[i - 1] + 1):
            xs.append(None), ys.append(None)
            for m in more:
                m.append(None)
        xs.append(t), ys.append(None if pd.isna(v) else v)
        for m, c in zip(more, columns):
            m.append(c[i])
    return xs, ys, more


def shade_gaps(fig: go.Figure, spans: list[Span], rows: int) -> None:
    for gap_start, gap_end in spans:
        for row in range(1, rows + 1):
            fig.add_vrect(x0=gap_start, x1=gap_end, fillcolor=GAP_FILL, opacity=0.18, line_width=0, layer="below",
                          row=row, col=1)
    if spans:
        # Shapes have no legend entry: an empty trace carries the note.
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="markers", name="no data (gap)",
                                 marker={"symbol": "square", "size": 12, "color": GAP_FILL, "opacity": 0.5},
                                 hoverinfo="skip"), row=1, col=1)


def scatter_type(n_points: int):
    return go.Scattergl if n_points > WEBGL_POINTS else go.Scatter


def style(fig: go.Figure, title: str, uirevision: str, height: int) -> go.Figure:
    fig.update_layout(
        title={"text": title, "x": 0, "xref": "paper", "xanchor": "left", "font": {"size": 16}},
        template="plotly_white", height=height, uirevision=uirevision, hovermode="x unified",
        paper_bgcolor="white", plot_bgcolor="white", font={"color": "#0c4a6e"},
        margin={"l": 70, "r": 20, "t": 70, "b": 40},
        legend={"orientation": "h", "x": 0, "y": 1.0, "yanchor": "bottom", "bgcolor": "rgba(255,255,255,0)"},
    )
    fig.update_xaxes(gridcolor=GRID, showline=True, linecolor="#bae6fd")
    fig.update_yaxes(gridcolor=GRID, zeroline=False)
    return fig


def crosshair(fig: go.Figure) -> go.Figure:
    """A crosshair under the pointer: a dotted line across every panel at its time and across the panel at its price,
    with the unified hover (every trace's values at that time, a candle's open, high, low and close) beside it."""
    spikes = {"showspikes": True, "spikemode": "across", "spikesnap": "cursor", "spikecolor": FLAT,
              "spikethickness": 1, "spikedash": "dot"}
    fig.update_xaxes(**spikes)
    fig.update_yaxes(**spikes)
    fig.update_layout(spikedistance=-1)  # the line follows the pointer anywhere on the plot, not only near a point
    return fig


def price_hoverformat(price: float | None) -> str:
    """The d3 format of a price in the hover, at the digits formatting.price writes: 87,123.45, 1.0002, 0.000012."""
    if price is None or pd.isna(price) or abs(price) >= 1000:
        return ",.2f"
    return ",.4f" if abs(price) >= 1 else ".6~g"


def currency_axis(currency: str | None) -> dict:
    if not currency or currency.lower() == "usd":
        return {"tickprefix": "$"}
    return {"ticksuffix": f" {currency.upper()}"}
