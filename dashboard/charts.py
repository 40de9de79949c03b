"""The real-time tab's plotly figures (no streamlit): live prices and 24 h volumes, and each series' name."""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from cryptoapp.schema import RESOLUTIONS, SIMULATED, parse_series_id
from dashboard import formatting
from dashboard.chart_layout import (DOWN, EXCHANGE_COLORS, FLAT, LIVE, SIMULATED_COLOR, UP, fitted_range, scatter_type,
                                    style, with_breaks)


def series_name(series: str, ticker: str, source: str | None, currency: str | None = "usd") -> str:
    """How a series is called on the page: "CoinGecko" (or "simulated") for CoinGecko's family, the exchange's name
    and its quote currency for an exchange's series, e.g. "binanceus (USDT)"."""
    if series == ticker:
        return "simulated" if source == SIMULATED else "CoinGecko"
    own_ticker, exchange = parse_series_id(series)
    name = exchange if own_ticker == ticker and exchange is not None else str(source)
    return name if not currency or currency.lower() == "usd" else f"{name} ({currency.upper()})"


def series_names(latest: pd.DataFrame) -> dict[str, str]:
    """series -> its name, for every series of a `data.latest()` frame."""
    return {row.series: series_name(row.series, row.sensor_id, row.source, row.currency)
            for row in latest.itertuples()}


def is_exchange(series: str, ticker: str) -> bool:
    return series != ticker


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
            xs, ys, _ = with_breaks(part, part, "value", interval_s, bucket_s)
            color = _series_color(ident, coin, source, exchanges)
            fig.add_trace(scatter_type(len(xs))(
                x=xs, y=ys, name=name, mode="lines+markers" if len(part) <= 30 else "lines", connectgaps=False,
                showlegend=rows["series"].nunique() > 1,  # a coin with one series is named by its axis
                line={"color": color, "width": 2, "dash": "dot" if source == SIMULATED else "solid"},
                marker={"size": 4}, hovertemplate="%{y:,.6~f}<extra>" + name + "</extra>",
            ), row=row, col=1)
        simulated = SIMULATED in set(rows["source"].dropna())
        label = f"{coin} (simulated)" if simulated else coin
        fig.update_yaxes(title_text=label, title_font={"size": 12}, separatethousands=True, nticks=4, row=row, col=1)
    style(fig, "Price, last 24 h (UTC)", uirevision="live-prices", height=110 + 130 * len(shown))
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
    style(fig, "24 h volume", uirevision="live-volume",
           height=110 + 55 * max(1, len(rows)))
    fig.update_layout(showlegend=False, hovermode="closest", margin={"l": 150, "r": 20, "t": 50, "b": 30})
    fig.update_xaxes(exponentformat="B")
    return fig
