"""The history tab's plotly figure (no streamlit): one series' candles or line, volume, indicators and layers."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from cryptoapp.schema import COINGECKO_BACKFILL, RESOLUTIONS, SEED_ID_SOURCES, SIMULATED
from dashboard import price_marks
from dashboard.chart_layout import (BACKFILLED, CANDLE_COLORS, DOWN, INDICATOR_COLORS, LIVE, SIMULATED_COLOR,
                                    SOURCE_NAMES, TREND, UP, VOLUME_COLOR, VOLUME_NOTE, VOLUME_PANEL, Span,
                                    crosshair, currency_axis, fitted_range, gap_spans, price_hoverformat, scatter_type,
                                    shade_gaps, style, with_breaks)
from dashboard.indicators import MACD, PRICE_PANEL, RSI, RSI_BANDS, Line


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
            xs, ys, (counts,) = with_breaks(frame, rows, "value", interval_s, 0, ["points"])
            backfill = source == COINGECKO_BACKFILL
            name = series_label if source not in SEED_ID_SOURCES else SOURCE_NAMES.get(source, source)
            if backfill:
                steps = sorted({g for g in rows["granularity"].dropna()})
                name += f" ({', '.join(steps)} points)" if steps else ""
            color = BACKFILLED if backfill else SIMULATED_COLOR if source == SIMULATED else LIVE
            fig.add_trace(scatter_type(len(xs))(
                x=xs, y=ys, name=name, mode="lines+markers" if len(rows) <= 60 else "lines",
                line={"color": color, "width": 2, "dash": "dash" if backfill else "solid"},
                marker={"size": 5}, opacity=0.85 if backfill else 1.0, connectgaps=False,
                hovertemplate=f"%{{y}}{unit}<extra>{name}</extra>",
            ), row=1, col=1)
        return
    for kind, rows in _bar_groups(frame):
        name = _kind_name(kind, series_label)
        hover = [f"{n:,} ticks · {' + '.join(s)}" for n, s in zip(rows["ticks"], rows["sources"])]
        if mode == "candles":
            (up, up_fill), (down, down_fill) = CANDLE_COLORS[kind]
            fig.add_trace(go.Candlestick(
                x=rows["timestamp"], open=rows["open"], high=rows["high"], low=rows["low"], close=rows["close"],
                name=name, legendrank=price_marks.CANDLE_RANK, text=hover, hoverinfo="y+text+name",
                increasing={"line": {"color": up}, "fillcolor": up_fill},
                decreasing={"line": {"color": down}, "fillcolor": down_fill},
            ), row=1, col=1)
        else:
            xs, ys, (texts,) = with_breaks(frame, rows, "close", interval_s, bucket_s, ["ticks"])
            color = {"live": LIVE, "backfill": BACKFILLED, "simulated": SIMULATED_COLOR}[kind]
            fig.add_trace(scatter_type(len(xs))(
                x=xs, y=ys, name=f"{name}, close", mode="lines+markers" if len(rows) <= 60 else "lines",
                line={"color": color, "width": 2, "dash": "dash" if kind == "backfill" else "solid"},
                marker={"size": 5}, connectgaps=False, customdata=texts,
                hovertemplate=f"%{{y}}{unit} · %{{customdata}} ticks<extra>{name}</extra>",
            ), row=1, col=1)


def own_volume(frame: pd.DataFrame) -> bool:
    """Whether the bars carry their own volume and VWAP: bars built from an exchange's trades (cryptoapp/trades)."""
    return is_bars(frame) and "quote_volume" in frame.columns and bool(frame["quote_volume"].notna().any())


def _own_volume_traces(fig: go.Figure, frame: pd.DataFrame, row: int, unit: str) -> None:
    """The bar's own traded volume (quote currency), coloured up/down as its candle, and the VWAP on the price."""
    colors = [UP if c >= o else DOWN for o, c in zip(frame["open"], frame["close"])]
    fig.add_trace(go.Bar(x=frame["timestamp"], y=frame["quote_volume"], name="volume per bar (from trades)",
                         marker={"color": colors, "line": {"width": 0}}, opacity=0.7,
                         hovertemplate=f"%{{y:,.0f}} {unit}<extra>volume per bar</extra>"), row=row, col=1)
    fig.update_yaxes(title_text=f"volume<br>({unit})", exponentformat="B", row=row, col=1)
    fig.add_trace(scatter_type(len(frame))(x=frame["timestamp"], y=frame["vwap"], name="VWAP (per bar)",
                                           mode="lines", connectgaps=False, line={"color": TREND, "width": 1.2},
                                           hovertemplate="%{y}<extra>VWAP</extra>"), row=1, col=1)


def _volume_trace(fig: go.Figure, frame: pd.DataFrame, row: int, currency: str | None) -> None:
    note = VOLUME_NOTE if is_bars(frame) else "24 h volume at each tick"
    unit = "USD" if not currency or currency.lower() == "usd" else currency.upper()
    if own_volume(frame):
        _own_volume_traces(fig, frame, row, unit)
        return
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
                     hovertemplate=f"%{{y}}<extra>{line.name}</extra>")
        if line.name.endswith(" signal"):
            trace["line"]["color"] = "#f97316"
        if line.name.endswith(" lower"):  # the band between lower and upper (the trace drawn before the middle)
            trace.update(fill="tonexty", fillcolor="rgba(99, 102, 241, 0.15)")
        fig.add_trace(scatter_type(len(frame))(**trace), row=row, col=1)
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
                   extra_panels: Sequence[str] = (), log_y: bool = False) -> go.Figure:
    """One series over a window: candlesticks (bars) or a line, its 24 h volume below, the indicator `lines` on the
    price or in panels of their own (RSI, MACD), interior gaps shaded, the time axis fitted to the data.

    `frame` is a tick or a bar frame of dashboard.data.load_history. Backfilled and simulated points are drawn in
    traces of their own. `layers` are called last with the figure and its Panels, to draw more (alert markers,
    forecasts) on any panel; `extra_panels` adds empty panels below, by name, for them. `log_y`: the price on a log
    scale. The newest price is tagged on the right axis, and a crosshair follows the pointer.
    """
    if mode not in ("candles", "line"):
        raise ValueError(f"mode {mode!r}: choose candles or line")
    resolution = frame.attrs.get("resolution") or ("1m" if is_bars(frame) else "ticks")
    bucket_s = float(RESOLUTIONS.get(resolution, 0))
    panels = [PRICE_PANEL]
    if own_volume(frame) or ("volume_24h" in frame.columns and frame["volume_24h"].notna().any()):
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
    shade_gaps(fig, gap_spans(frame, interval_s, bucket_s), len(panels))

    x_range = None
    if not frame.empty:
        last = frame["timestamp"].max() + pd.Timedelta(seconds=bucket_s)  # a bar ends one resolution after it starts
        x_range = fitted_range(frame["timestamp"].min(), last, start, end, min_pad_s=max(5.0, bucket_s / 2))
    elif start is not None and end is not None:
        x_range = (pd.Timestamp(start), pd.Timestamp(end))
    style(fig, _title(frame, ticker, series_label, resolution),
          uirevision=f"history-{ticker}-{series_label}-{resolution}-{mode}", height=420 + 140 * (len(panels) - 1))
    _price_panel(fig, frame, mode, currency, log_y)
    if x_range is not None:
        fig.update_xaxes(range=list(x_range))
    for layer in layers:
        layer(fig, Panels(rows=rows, frame=frame, x_range=x_range))
    return fig


def _price_panel(fig: go.Figure, frame: pd.DataFrame, mode: str, currency: str | None, log_y: bool) -> None:
    """The price axis (linear or log), the legend under the chart, the crosshair, and the marks on the price panel:
    the candles' up/down legend, where bars turn from single ticks to full ones, the last price on the right."""
    column = "close" if is_bars(frame) else "value"
    level = frame[column].dropna().iloc[-1] if frame[column].notna().any() else None
    fig.update_yaxes(title_text="price", separatethousands=True, hoverformat=price_hoverformat(level),
                     **currency_axis(currency), row=1, col=1)
    if log_y:
        fig.update_yaxes(type="log", title_text="price (log scale)", row=1, col=1)
    # The legend under the chart: with indicators it takes several lines, which would cover the title above. The right
    # margin holds the last price's tag.
    fig.update_layout(legend={"orientation": "h", "x": 0, "y": -0.06, "yanchor": "top", "xanchor": "left"},
                      margin={"l": 80, "r": 95, "t": 50, "b": 20}, legend_traceorder="normal")
    fig.update_xaxes(rangeslider_visible=False)
    crosshair(fig)
    if mode == "candles" and is_bars(frame):
        price_marks.up_down_legend(fig)
        price_marks.mark_density_changes(fig, frame)
    price_marks.draw_last_price(fig, frame, column, currency, log_y)


def _title(frame: pd.DataFrame, ticker: str, series_label: str, resolution: str) -> str:
    """"BTC · CoinGecko · 5m bars", and "· simulated data" when simulated ticks are drawn and the series' name does not
    already say so."""
    simulated = SIMULATED in set(frame["source"].dropna()) if "source" in frame.columns else \
        any(SIMULATED in s for s in frame["sources"]) if "sources" in frame.columns else False
    what = "ticks" if resolution == "ticks" else f"{resolution} bars"
    named = "simulated" in series_label.lower()
    return f"{ticker} · {series_label} · {what}" + (" · simulated data" if simulated and not named else "")
