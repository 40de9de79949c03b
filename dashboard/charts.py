"""Plotly figures for the dashboard (no streamlit import): live prices and volumes, history with trend, backfill and gaps."""

from __future__ import annotations

import concurrent.futures
import os
import shutil
from dataclasses import dataclass

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from cryptoapp.schema import COINGECKO, COINGECKO_BACKFILL, SIMULATED, gap_threshold
from dashboard import formatting

UP, DOWN, FLAT = "#15803d", "#b91c1c", "#64748b"
LIVE, BACKFILLED, SIMULATED_COLOR, TREND = "#0369a1", "#38bdf8", "#c2410c", "#334155"
GAP_FILL = "#94a3b8"
GRID = "#e0f2fe"
COIN_COLORS = ("#0369a1", "#7c3aed", "#b45309", "#047857", "#be185d", "#0e7490", "#4d7c0f", "#6d28d9")
# Above this many points a trace is drawn with WebGL: SVG slows down visibly past a few thousand.
WEBGL_POINTS = 1000
PNG_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Metric:
    column: str
    label: str
    prefix: str = ""
    suffix: str = ""
    exponentformat: str = "none"
    hover: str = ",.2f"


METRICS = {
    "Price": Metric("value", "Price (USD)", prefix="$", hover=",.6~f"),
    "24 h volume": Metric("volume_24h", "24 h volume (USD)", prefix="$", exponentformat="B", hover=",.0f"),
    "24 h change": Metric("change_24h_pct", "24 h change (%)", suffix=" %", hover="+.2f"),
    "Bid/ask spread": Metric("spread", "Bid/ask spread (USD)", prefix="$", hover=",.6~f"),
}
SOURCE_NAMES = {COINGECKO: "CoinGecko (live)", SIMULATED: "simulated data (not market prices)",
                COINGECKO_BACKFILL: "CoinGecko backfill"}


class PngExportError(RuntimeError):
    """A chart could not be turned into a PNG; the message says why and what to install or change."""


Span = tuple[pd.Timestamp, pd.Timestamp]


def _thresholds(rows: pd.DataFrame, interval_s: float, bucket_s: float) -> list[float]:
    """For each row and the next, the seconds between them that make a gap (cryptoapp.schema.gap_threshold)."""
    labels = rows["granularity"].tolist()
    return [gap_threshold(interval_s, a, b, bucket_s=bucket_s) for a, b in zip(labels, labels[1:])]


def gap_spans(frame: pd.DataFrame, interval_s: float, bucket_s: float = 0,
              start: pd.Timestamp | None = None, end: pd.Timestamp | None = None) -> list[Span]:
    """Time spans the backfill calls gaps (cryptoapp.schema.gap_threshold), window edges included."""
    if frame.empty:
        return [(pd.Timestamp(start), pd.Timestamp(end))] if start is not None and end is not None else []
    rows = frame.sort_values("timestamp", kind="stable")
    times = rows["timestamp"].tolist()
    labels = rows["granularity"].tolist()
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


def _with_breaks(rows: pd.DataFrame, column: str, interval_s: float, bucket_s: float) -> tuple[list, list, list]:
    """x, y and tick counts with a None wherever the series has a gap, so no line is drawn across it."""
    limits = _thresholds(rows, interval_s, bucket_s)
    times, values, points = rows["timestamp"].tolist(), rows[column].tolist(), rows["points"].tolist()
    xs, ys, counts = [], [], []
    for i, (t, v, n) in enumerate(zip(times, values, points)):
        if i and (t - times[i - 1]).total_seconds() > limits[i - 1]:
            xs.append(None), ys.append(None), counts.append(None)
        xs.append(t), ys.append(None if pd.isna(v) else v), counts.append(n)
    return xs, ys, counts


def _scatter(n_points: int):
    return go.Scattergl if n_points > WEBGL_POINTS else go.Scatter


def _style(fig: go.Figure, title: str, uirevision: str, height: int) -> go.Figure:
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


def _trace_groups(frame: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """Rows split by source, backfilled rows last so live data draws on top."""
    sources = frame["source"].fillna("unknown source")
    order = sorted(sources.unique(), key=lambda s: (s == COINGECKO_BACKFILL, s))
    return [(source, frame[sources == source]) for source in order]


def history_figure(frame: pd.DataFrame, ticker: str, metric: str = "Price", interval_s: float = 60,
                   trend_hours: float | None = None, start: pd.Timestamp | None = None,
                   end: pd.Timestamp | None = None) -> go.Figure:
    """One coin over a window: a line per source (backfill dashed and lighter), gaps shaded, optional moving average."""
    spec = METRICS[metric]
    bucket_s = float(frame.attrs.get("bucket_s") or 0)
    fig = go.Figure()
    for source, rows in _trace_groups(frame):
        xs, ys, counts = _with_breaks(rows, spec.column, interval_s, bucket_s)
        backfill = source == COINGECKO_BACKFILL
        name = SOURCE_NAMES.get(source, source)
        if backfill:
            steps = sorted({g for g in rows["granularity"].dropna()})
            name += f" ({', '.join(steps)} points)" if steps else ""
        color = BACKFILLED if backfill else SIMULATED_COLOR if source == SIMULATED else LIVE
        fig.add_trace(_scatter(len(xs))(
            x=xs, y=ys, customdata=counts, name=name, mode="lines+markers" if len(rows) <= 60 else "lines",
            line={"color": color, "width": 2, "dash": "dash" if backfill else "solid"},
            marker={"size": 5}, opacity=0.85 if backfill else 1.0, connectgaps=False,
            hovertemplate=f"%{{y:{spec.hover}}}{spec.suffix} · %{{customdata}} tick(s)<extra>{name}</extra>",
        ))
    if trend_hours and not frame.empty:
        series = frame.set_index("timestamp")[spec.column].dropna()
        if not series.empty:
            trend = series.rolling(pd.Timedelta(hours=trend_hours), min_periods=1).mean()
            fig.add_trace(_scatter(len(trend))(
                x=trend.index, y=trend.to_numpy(), name=f"{trend_hours:g} h moving average", mode="lines",
                line={"color": TREND, "width": 2, "dash": "dot"},
                hovertemplate=f"%{{y:{spec.hover}}}{spec.suffix}<extra>{trend_hours:g} h average</extra>",
            ))
    gaps = gap_spans(frame, interval_s, bucket_s, start, end)
    for gap_start, gap_end in gaps:
        fig.add_vrect(x0=gap_start, x1=gap_end, fillcolor=GAP_FILL, opacity=0.18, line_width=0, layer="below")
    if gaps:
        # Shapes have no legend entry: an empty trace carries the note.
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="markers", name="no data (gap)",
                                 marker={"symbol": "square", "size": 12, "color": GAP_FILL, "opacity": 0.5},
                                 hoverinfo="skip"))
    simulated = SIMULATED in set(frame["source"].dropna())
    title = f"{ticker} · {spec.label}" + (" · simulated data" if simulated else "")
    _style(fig, title, uirevision=f"history-{ticker}-{metric}", height=480)
    fig.update_yaxes(title_text=spec.label, tickprefix=spec.prefix, ticksuffix=spec.suffix,
                     exponentformat=spec.exponentformat, separatethousands=True)
    fig.update_xaxes(title_text="time (UTC)", range=[start, end] if start is not None and end is not None else None)
    return fig


def live_prices_figure(series: pd.DataFrame, coins: list[str], interval_s: float = 60,
                       start: pd.Timestamp | None = None, end: pd.Timestamp | None = None) -> go.Figure:
    """Every coin's price over the live window, one panel per coin (their prices differ by 10^5), shared time axis."""
    shown = [coin for coin in coins if not series.empty and (series["sensor_id"] == coin).any()] or coins[:1]
    fig = make_subplots(rows=len(shown), cols=1, shared_xaxes=True, vertical_spacing=0.03)
    bucket_s = float(series.attrs.get("bucket_s") or 0)
    for row, coin in enumerate(shown, start=1):
        rows = series[series["sensor_id"] == coin] if not series.empty else series
        simulated = SIMULATED in set(rows["source"].dropna())
        label = f"{coin} (simulated)" if simulated else coin
        xs, ys, counts = _with_breaks(rows, "value", interval_s, bucket_s)
        color = COIN_COLORS[(row - 1) % len(COIN_COLORS)]
        fig.add_trace(_scatter(len(xs))(
            x=xs, y=ys, customdata=counts, name=label, mode="lines", connectgaps=False,
            line={"color": color, "width": 2, "dash": "dot" if simulated else "solid"},
            hovertemplate="%{y:$,.6~f}<extra>" + label + "</extra>",
        ), row=row, col=1)
        fig.update_yaxes(title_text=label, title_font={"size": 12, "color": color}, tickprefix="$",
                         separatethousands=True, nticks=4, row=row, col=1)
    _style(fig, "Price, last 24 h (UTC)", uirevision="live-prices", height=90 + 120 * len(shown))
    fig.update_layout(showlegend=False, margin={"l": 95, "r": 20, "t": 50, "b": 30})
    if start is not None and end is not None:
        fig.update_xaxes(range=[start, end])
    return fig


def volume_figure(latest: pd.DataFrame) -> go.Figure:
    """Each coin's newest 24 h volume as a bar, green when its price rose over 24 h, red when it fell."""
    rows = latest.iloc[::-1]  # plotly draws the first category at the bottom
    simulated = rows["source"] == SIMULATED
    labels = [f"{c} (simulated)" if s else c for c, s in zip(rows["sensor_id"], simulated)]
    change = rows["change_24h_pct"]
    colors = [FLAT if pd.isna(c) or c == 0 else UP if c > 0 else DOWN for c in change]
    fig = go.Figure(go.Bar(
        x=rows["volume_24h"], y=labels, orientation="h", marker={"color": colors},
        marker_pattern_shape=["/" if s else "" for s in simulated],
        text=[formatting.money(v) for v in rows["volume_24h"]], textposition="auto",
        hovertemplate="%{y}: %{x:$,.0f}<extra>24 h volume</extra>",
    ))
    _style(fig, "24 h volume (USD)", uirevision="live-volume", height=110 + 55 * max(1, len(rows)))
    fig.update_layout(showlegend=False, hovermode="closest", margin={"l": 95, "r": 20, "t": 50, "b": 30})
    fig.update_xaxes(tickprefix="$", exponentformat="B")
    return fig


def chromium_path() -> str | None:
    """The browser kaleido will use: BROWSER_PATH, else a Chrome/Chromium on PATH."""
    configured = os.environ.get("BROWSER_PATH")
    if configured:
        return configured if os.path.exists(configured) else None
    names = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
    return next((path for path in map(shutil.which, names) if path), None)


def figure_png(fig: go.Figure, width: int = 1200, height: int = 600, timeout_s: float = PNG_TIMEOUT_S) -> bytes:
    """The figure as a PNG of width x height pixels, drawn by kaleido in headless Chromium."""
    if chromium_path() is None:
        raise PngExportError("PNG export needs Chromium, which was not found: install it "
                             "(apt-get install chromium, or scripts/services.sh up chromium) or set BROWSER_PATH")
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="png-export")
    # A hung browser must not hold the page: wait at most timeout_s, then give up on it.
    future = pool.submit(fig.to_image, format="png", width=width, height=height)
    try:
        return future.result(timeout=timeout_s)
    except concurrent.futures.TimeoutError:
        raise PngExportError(f"PNG export took longer than {timeout_s:g} s and was abandoned; try again") from None
    except Exception as exc:  # kaleido reports a missing or broken browser in several ways
        raise PngExportError(f"PNG export failed: {str(exc).splitlines()[0][:200]}") from None
    finally:
        pool.shutdown(wait=False)
