"""Plotly figures for the dashboard (no streamlit import): live prices per coin and series, 24 h volumes, and the
history chart (candlesticks or a line, the 24 h volume panel, indicators, and extra layers); PNG export."""

from __future__ import annotations

import concurrent.futures
import dataclasses
import os
import shutil
from collections.abc import Callable, Mapping, Sequence

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from cryptoapp.schema import COINGECKO, COINGECKO_BACKFILL, RESOLUTIONS, SEED_ID_SOURCES, SIMULATED, gap_threshold
from dashboard import formatting
from dashboard.indicators import MACD, PRICE_PANEL, RSI, RSI_BANDS, Line

UP, DOWN, FLAT = "#15803d", "#b91c1c", "#64748b"
LIVE, BACKFILLED, SIMULATED_COLOR, TREND = "#0369a1", "#38bdf8", "#c2410c", "#334155"
# Candles: live bars in full colour, backfilled bars pale (history CoinGecko sent at 5 min to 1 d steps), simulated
# bars orange/brown so they never pass for market prices.
CANDLE_COLORS = {"live": (UP, DOWN), "backfill": ("#4ade80", "#f87171"), "simulated": ("#f59e0b", "#7c2d12")}
EXCHANGE_COLORS = ("#7c3aed", "#b45309", "#047857", "#be185d", "#0e7490")
COIN_COLORS = ("#0369a1", "#7c3aed", "#b45309", "#047857", "#be185d", "#0e7490", "#4d7c0f", "#6d28d9")
INDICATOR_COLORS = {"SMA": "#334155", "EMA": "#d97706", "Bollinger bands": "#6366f1", RSI: "#7c3aed",
                    MACD: "#0369a1"}
VOLUME_COLOR = "#93c5fd"
GAP_FILL = "#94a3b8"
GRID = "#e0f2fe"
# Above this many points a trace is drawn with WebGL: SVG slows down visibly past a few thousand.
WEBGL_POINTS = 1000
PNG_TIMEOUT_S = 30.0
SOURCE_NAMES = {COINGECKO: "CoinGecko (live)", SIMULATED: "simulated data (not market prices)",
                COINGECKO_BACKFILL: "CoinGecko backfill"}
VOLUME_PANEL = "volume"
VOLUME_NOTE = "24 h volume at bar close"  # what the sources give: a rolling 24 h sum, not the bar's own volume


class PngExportError(RuntimeError):
    """A chart could not be turned into a PNG; the message says why and what to install or change."""


Span = tuple[pd.Timestamp, pd.Timestamp]


# --- names ---------------------------------------------------------------------------------------------------------

def series_name(series: str, ticker: str, source: str | None, currency: str | None = "usd") -> str:
    """How a series is called on the page: "CoinGecko" (or "simulated") for CoinGecko's family, the exchange's name
    and its quote currency for an exchange's series, e.g. "binanceus (USDT)"."""
    if series == ticker:
        return "simulated" if source == SIMULATED else "CoinGecko"
    name = series[len(ticker) + 1:] if series.startswith(f"{ticker}_") else str(source)
    return name if not currency or currency.lower() == "usd" else f"{name} ({currency.upper()})"


def series_names(latest: pd.DataFrame) -> dict[str, str]:
    """series -> its name, for every series of a `data.latest()` frame."""
    return {row.series: series_name(row.series, row.sensor_id, row.source, row.currency)
            for row in latest.itertuples()}


def is_exchange(series: str, ticker: str) -> bool:
    return series != ticker


# --- the time axis and gaps ----------------------------------------------------------------------------------------

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


def _with_breaks(frame: pd.DataFrame, rows: pd.DataFrame, column: str, interval_s: float, bucket_s: float,
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


def _shade_gaps(fig: go.Figure, spans: list[Span], rows: int) -> None:
    for gap_start, gap_end in spans:
        for row in range(1, rows + 1):
            fig.add_vrect(x0=gap_start, x1=gap_end, fillcolor=GAP_FILL, opacity=0.18, line_width=0, layer="below",
                          row=row, col=1)
    if spans:
        # Shapes have no legend entry: an empty trace carries the note.
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="markers", name="no data (gap)",
                                 marker={"symbol": "square", "size": 12, "color": GAP_FILL, "opacity": 0.5},
                                 hoverinfo="skip"), row=1, col=1)


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


def _currency_axis(currency: str | None) -> dict:
    if not currency or currency.lower() == "usd":
        return {"tickprefix": "$"}
    return {"ticksuffix": f" {currency.upper()}"}


# --- the real-time tab ---------------------------------------------------------------------------------------------

def _series_color(series: str, ticker: str, source: str | None, exchanges: list[str]) -> str:
    if not is_exchange(series, ticker):
        return SIMULATED_COLOR if source == SIMULATED else LIVE
    if series not in exchanges:
        exchanges.append(series)
    return EXCHANGE_COLORS[exchanges.index(series) % len(EXCHANGE_COLORS)]


def live_prices_figure(series: pd.DataFrame, coins: list[str], names: Mapping[str, str], interval_s: float = 60,
                       start: pd.Timestamp | None = None, end: pd.Timestamp | None = None) -> go.Figure:
    """Every coin's price over the live window, one panel per coin (their prices differ by 10^5) on a shared time
    axis, and in a coin's panel one line per series: CoinGecko's and each exchange's are never joined into one."""
    shown = [coin for coin in coins if not series.empty and (series["sensor_id"] == coin).any()] or coins[:1]
    fig = make_subplots(rows=len(shown), cols=1, shared_xaxes=True, vertical_spacing=0.03)
    exchanges: list[str] = []
    for row, coin in enumerate(shown, start=1):
        rows = series[series["sensor_id"] == coin] if not series.empty else series
        for ident in dict.fromkeys(rows["series"]):
            part = rows[rows["series"] == ident]
            sources = set(part["source"].dropna())
            source = SIMULATED if SIMULATED in sources else next(iter(sources), None)
            name = f"{coin} · {names.get(ident, ident)}"
            resolution = part["resolution"].iloc[0] if "resolution" in part.columns and len(part) else "ticks"
            bucket_s = RESOLUTIONS.get(resolution, 0)
            if bucket_s:
                name += f" ({resolution} closes)"
            xs, ys, _ = _with_breaks(part, part, "value", interval_s, bucket_s)
            color = _series_color(ident, coin, source, exchanges)
            fig.add_trace(_scatter(len(xs))(
                x=xs, y=ys, name=name, mode="lines+markers" if len(part) <= 30 else "lines", connectgaps=False,
                showlegend=rows["series"].nunique() > 1,  # a coin with one series is named by its axis
                line={"color": color, "width": 2, "dash": "dot" if source == SIMULATED else "solid"},
                marker={"size": 4}, hovertemplate="%{y:,.6~f}<extra>" + name + "</extra>",
            ), row=row, col=1)
        simulated = SIMULATED in set(rows["source"].dropna())
        label = f"{coin} (simulated)" if simulated else coin
        fig.update_yaxes(title_text=label, title_font={"size": 12}, separatethousands=True, nticks=4, row=row, col=1)
    _style(fig, "Price, last 24 h (UTC)", uirevision="live-prices", height=110 + 130 * len(shown))
    fig.update_layout(margin={"l": 95, "r": 20, "t": 50, "b": 50},
                      legend={"orientation": "h", "x": 0, "y": -0.04, "yanchor": "top"})
    if not series.empty:
        fig.update_xaxes(range=fitted_range(series["timestamp"].min(), series["timestamp"].max(), start, end))
    elif start is not None and end is not None:
        fig.update_xaxes(range=[start, end])
    return fig


def volume_figure(latest: pd.DataFrame, names: Mapping[str, str] | None = None) -> go.Figure:
    """Each series' newest 24 h volume as a bar (in its own currency), green when its price rose over 24 h, red when
    it fell; the first coin on top."""
    names = names or series_names(latest)
    rows = latest.iloc[::-1]  # plotly draws the first category at the bottom
    simulated = (rows["source"] == SIMULATED).tolist()
    labels = [(f"{coin} (simulated)" if sim else coin) if ident == coin else f"{coin} · {names.get(ident, ident)}"
              for coin, ident, sim in zip(rows["sensor_id"], rows["series"], simulated)]
    change = rows["change_24h_pct"]
    colors = [FLAT if pd.isna(c) or c == 0 else UP if c > 0 else DOWN for c in change]
    currencies = rows["currency"].fillna("usd").tolist()
    fig = go.Figure(go.Bar(
        x=rows["volume_24h"], y=labels, orientation="h", marker={"color": colors},
        marker_pattern_shape=["/" if s else "" for s in simulated],
        text=[formatting.money(v, c) for v, c in zip(rows["volume_24h"], currencies)], textposition="auto",
        customdata=[c.upper() for c in currencies],
        hovertemplate="%{y}: %{x:,.0f} %{customdata}<extra>24 h volume</extra>",
    ))
    _style(fig, "24 h volume", uirevision="live-volume",
           height=110 + 55 * max(1, len(rows)))
    fig.update_layout(showlegend=False, hovermode="closest", margin={"l": 150, "r": 20, "t": 50, "b": 30})
    fig.update_xaxes(exponentformat="B")
    return fig


# --- the history tab -----------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Panels:
    """What an extra layer of the history chart gets: the subplot row of each panel ("price", "volume", "RSI",
    "MACD", and any extra panel asked for), the frame drawn and the time axis."""

    rows: Mapping[str, int]
    frame: pd.DataFrame
    x_range: Span | None

    def row(self, name: str) -> int:
        return self.rows[name]


# A layer draws on the finished history figure, e.g. alert markers or a forecast band on the "price" panel:
# `def markers(fig, panels): fig.add_trace(go.Scatter(...), row=panels.row("price"), col=1)`.
Layer = Callable[[go.Figure, Panels], None]


def bar_kind(sources: Sequence[str]) -> str:
    """How a bar is drawn: "simulated" if any of its ticks was, "backfill" if any came from the backfill, else
    "live" (CoinGecko's live polls or an exchange's quotes)."""
    sources = set(sources or ())
    if SIMULATED in sources:
        return "simulated"
    return "backfill" if COINGECKO_BACKFILL in sources else "live"


def _kind_name(kind: str, series_label: str) -> str:
    return {"live": f"{series_label} (live)" if series_label == "CoinGecko" else series_label,
            "backfill": "CoinGecko backfill (history)", "simulated": SOURCE_NAMES[SIMULATED]}[kind]


def _bar_groups(frame: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    kinds = frame["sources"].map(bar_kind)
    order = [k for k in ("backfill", "live", "simulated") if (kinds == k).any()]  # live drawn over backfill
    return [(kind, frame[kinds == kind]) for kind in order]


def _tick_groups(frame: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    sources = frame["source"].fillna("unknown source")
    order = sorted(sources.unique(), key=lambda s: (s != COINGECKO_BACKFILL, s))
    return [(source, frame[sources == source]) for source in order]


def is_bars(frame: pd.DataFrame) -> bool:
    return "close" in frame.columns


def _price_traces(fig: go.Figure, frame: pd.DataFrame, mode: str, series_label: str, interval_s: float,
                  bucket_s: float, currency: str | None) -> None:
    unit = "" if not currency or currency.lower() == "usd" else f" {currency.upper()}"
    if not is_bars(frame):
        for source, rows in _tick_groups(frame):
            xs, ys, (counts,) = _with_breaks(frame, rows, "value", interval_s, 0, ["points"])
            backfill = source == COINGECKO_BACKFILL
            name = series_label if source not in SEED_ID_SOURCES else SOURCE_NAMES.get(source, source)
            if backfill:
                steps = sorted({g for g in rows["granularity"].dropna()})
                name += f" ({', '.join(steps)} points)" if steps else ""
            color = BACKFILLED if backfill else SIMULATED_COLOR if source == SIMULATED else LIVE
            fig.add_trace(_scatter(len(xs))(
                x=xs, y=ys, name=name, mode="lines+markers" if len(rows) <= 60 else "lines",
                line={"color": color, "width": 2, "dash": "dash" if backfill else "solid"},
                marker={"size": 5}, opacity=0.85 if backfill else 1.0, connectgaps=False,
                hovertemplate=f"%{{y:,.6~f}}{unit}<extra>{name}</extra>",
            ), row=1, col=1)
        return
    for kind, rows in _bar_groups(frame):
        name = _kind_name(kind, series_label)
        hover = [f"{n:,} ticks · {' + '.join(s)}" for n, s in zip(rows["ticks"], rows["sources"])]
        if mode == "candles":
            up, down = CANDLE_COLORS[kind]
            fig.add_trace(go.Candlestick(
                x=rows["timestamp"], open=rows["open"], high=rows["high"], low=rows["low"], close=rows["close"],
                name=name, increasing={"line": {"color": up}, "fillcolor": up},
                decreasing={"line": {"color": down}, "fillcolor": down}, text=hover, hoverinfo="x+y+text+name",
            ), row=1, col=1)
        else:
            xs, ys, (texts,) = _with_breaks(frame, rows, "close", interval_s, bucket_s, ["ticks"])
            color = {"live": LIVE, "backfill": BACKFILLED, "simulated": SIMULATED_COLOR}[kind]
            fig.add_trace(_scatter(len(xs))(
                x=xs, y=ys, name=f"{name}, close", mode="lines+markers" if len(rows) <= 60 else "lines",
                line={"color": color, "width": 2, "dash": "dash" if kind == "backfill" else "solid"},
                marker={"size": 5}, connectgaps=False, customdata=texts,
                hovertemplate=f"%{{y:,.6~f}}{unit} · %{{customdata}} ticks<extra>{name}</extra>",
            ), row=1, col=1)


def _volume_trace(fig: go.Figure, frame: pd.DataFrame, row: int, currency: str | None) -> None:
    note = VOLUME_NOTE if is_bars(frame) else "24 h volume at each tick"
    unit = "USD" if not currency or currency.lower() == "usd" else currency.upper()
    fig.add_trace(go.Bar(x=frame["timestamp"], y=frame["volume_24h"], name=f"{note} (rolling, as the source gives it)",
                         marker={"color": VOLUME_COLOR, "line": {"width": 0}},
                         hovertemplate=f"%{{y:,.0f}} {unit}<extra>{note}</extra>"), row=row, col=1)
    fig.update_yaxes(title_text=f"24 h volume<br>({unit})", exponentformat="B", row=row, col=1)


def _indicator_traces(fig: go.Figure, frame: pd.DataFrame, lines: Sequence[Line], rows: Mapping[str, int]) -> None:
    x = frame["timestamp"]
    for line in lines:
        row = rows[line.panel]
        color = INDICATOR_COLORS.get(line.indicator, TREND)
        values = line.values.reindex(frame.index)
        if line.kind == "bar":
            fig.add_trace(go.Bar(x=x, y=values, name=line.name, marker={
                "color": [UP if v >= 0 else DOWN for v in values.fillna(0)], "line": {"width": 0}}, opacity=0.6,
                hovertemplate=f"%{{y:,.4~f}}<extra>{line.name}</extra>"), row=row, col=1)
            continue
        dash = "dot" if line.name.endswith((" middle", " signal")) else "solid"
        trace = dict(x=x, y=values, name=line.name, mode="lines", connectgaps=False,
                     line={"color": color, "width": 1.5, "dash": dash},
                     hovertemplate=f"%{{y:,.6~f}}<extra>{line.name}</extra>")
        if line.name.endswith(" signal"):
            trace["line"]["color"] = "#f97316"
        if line.name.endswith(" lower"):  # the band between lower and upper (the trace drawn before the middle)
            trace.update(fill="tonexty", fillcolor="rgba(99, 102, 241, 0.15)")
        fig.add_trace(_scatter(len(frame))(**trace), row=row, col=1)
    if RSI in rows:
        for level in RSI_BANDS:
            fig.add_hline(y=level, line={"color": "#94a3b8", "width": 1, "dash": "dash"}, row=rows[RSI], col=1)
        fig.update_yaxes(range=[0, 100], title_text="RSI", row=rows[RSI], col=1)
    if MACD in rows:
        fig.update_yaxes(title_text="MACD", row=rows[MACD], col=1)


def _bollinger_order(lines: Sequence[Line]) -> list[Line]:
    """The lines in their order, but the Bollinger bands as upper, lower, middle, one after the other, so the fill
    of the lower band ("tonexty": to the trace drawn just before) reaches the upper one."""
    bands = sorted((line for line in lines if line.indicator == "Bollinger bands"),
                   key=lambda line: 2 if line.name.endswith(" middle") else 1 if line.name.endswith(" lower") else 0)
    out: list[Line] = []
    for line in lines:
        if line.indicator != "Bollinger bands":
            out.append(line)
        elif not any(b in out for b in bands):
            out += bands
    return out


def history_figure(frame: pd.DataFrame, ticker: str, series_label: str = "CoinGecko", *, mode: str = "candles",
                   lines: Sequence[Line] = (), interval_s: float = 60, start: pd.Timestamp | None = None,
                   end: pd.Timestamp | None = None, currency: str | None = "usd", layers: Sequence[Layer] = (),
                   extra_panels: Sequence[str] = ()) -> go.Figure:
    """One series over a window: candlesticks (bars) or a line, its 24 h volume below, the indicator `lines` on the
    price or in panels of their own (RSI, MACD), interior gaps shaded, the time axis fitted to the data.

    `frame` is a tick or a bar frame of dashboard.data.load_history. Backfilled and simulated points are drawn in
    traces of their own. `layers` are called last with the figure and its Panels, to draw more (alert markers,
    forecasts) on any panel; `extra_panels` adds empty panels below, by name, for them.
    """
    if mode not in ("candles", "line"):
        raise ValueError(f"mode {mode!r}: choose candles or line")
    resolution = frame.attrs.get("resolution") or ("1m" if is_bars(frame) else "ticks")
    bucket_s = float(RESOLUTIONS.get(resolution, 0))
    panels = [PRICE_PANEL]
    if "volume_24h" in frame.columns and frame["volume_24h"].notna().any():
        panels.append(VOLUME_PANEL)
    panels += [p for p in (RSI, MACD) if any(line.panel == p for line in lines)]
    panels += [p for p in extra_panels if p not in panels]
    weights = [3.0 if p == PRICE_PANEL else 1.0 for p in panels]
    rows = {name: i for i, name in enumerate(panels, start=1)}
    fig = make_subplots(rows=len(panels), cols=1, shared_xaxes=True, vertical_spacing=0.04,
                        row_heights=[w / sum(weights) for w in weights])
    _price_traces(fig, frame, mode, series_label, interval_s, bucket_s, currency)
    if VOLUME_PANEL in rows:
        _volume_trace(fig, frame, rows[VOLUME_PANEL], currency)
    _indicator_traces(fig, frame, _bollinger_order(lines), rows)
    _shade_gaps(fig, gap_spans(frame, interval_s, bucket_s), len(panels))

    x_range = None
    if not frame.empty:
        last = frame["timestamp"].max() + pd.Timedelta(seconds=bucket_s)  # a bar ends one resolution after it starts
        x_range = fitted_range(frame["timestamp"].min(), last, start, end, min_pad_s=max(5.0, bucket_s / 2))
    elif start is not None and end is not None:
        x_range = (pd.Timestamp(start), pd.Timestamp(end))
    simulated = SIMULATED in set(frame["source"].dropna()) if "source" in frame.columns else \
        any(SIMULATED in s for s in frame["sources"]) if "sources" in frame.columns else False
    what = "ticks" if resolution == "ticks" else f"{resolution} bars"
    title = f"{ticker} · {series_label} · {what}" + (" · simulated data" if simulated else "")
    _style(fig, title, uirevision=f"history-{ticker}-{series_label}-{resolution}-{mode}",
           height=420 + 140 * (len(panels) - 1))
    fig.update_yaxes(title_text="price", separatethousands=True, **_currency_axis(currency), row=1, col=1)
    # The legend under the chart: with indicators it takes several lines, which would cover the title above.
    fig.update_layout(legend={"orientation": "h", "x": 0, "y": -0.06, "yanchor": "top", "xanchor": "left"},
                      margin={"l": 80, "r": 20, "t": 50, "b": 20}, legend_traceorder="normal")
    fig.update_xaxes(rangeslider_visible=False)
    if x_range is not None:
        fig.update_xaxes(range=list(x_range))
    for layer in layers:
        layer(fig, Panels(rows=rows, frame=frame, x_range=x_range))
    return fig


# --- PNG export ----------------------------------------------------------------------------------------------------

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
