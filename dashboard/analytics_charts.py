"""Plotly figures and tables for the Analytics tab (no streamlit import): daily statistics, volatility, correlation heat map."""

from __future__ import annotations

import math

import pandas as pd
import plotly.graph_objects as go

from cryptoapp.schema import DEFAULT_TICKERS
from dashboard import formatting
from dashboard.chart_layout import COIN_COLORS, GRID

# The sky theme's blue for moving together, its amber for moving apart, white for unrelated (.streamlit/config.toml).
CORRELATION_COLORS = [[0.0, "#b45309"], [0.5, "#f8fafc"], [1.0, "#0369a1"]]
FEW_DAYS = 30  # below this a correlation of daily returns is a first look, not a measurement

TABLE_COLUMNS = {"date": "Day (UTC)", "open": "Open", "high": "High", "low": "Low", "close": "Close",
                 "return": "Return", "volatility": "Volatility (daily)", "volatility_annualized": "Volatility (annualized)",
                 "max_drawdown": "Max drawdown", "ticks": "Ticks", "coverage": "Coverage", "sources": "Sources"}


def coins_in_order(daily: pd.DataFrame) -> list[str]:
    """The coins of the results, the tracked defaults first in their usual order (BTC first), then the others."""
    order = {t: i for i, t in enumerate(DEFAULT_TICKERS)}
    return sorted(dict.fromkeys(daily["sensor_id"]), key=lambda c: (order.get(c, len(order)), c))


def daily_table(daily: pd.DataFrame, coin: str) -> pd.DataFrame:
    """One coin's days, newest first, as a person reads them: prices in dollars, ratios as percentages (a drawdown
    is a fall: negative), counts with separators, — where the run could not compute a value; headers in words."""
    rows = daily[daily["sensor_id"] == coin].sort_values("date", ascending=False)
    table = pd.DataFrame({"date": rows["date"].dt.strftime("%Y-%m-%d")})
    for column in ("open", "high", "low", "close"):
        table[column] = rows[column].map(formatting.price)
    table["return"] = rows["return"].map(lambda x: formatting.percent(x, signed=True))
    for column in ("volatility", "volatility_annualized", "coverage"):
        table[column] = rows[column].map(formatting.percent)
    table["max_drawdown"] = rows["max_drawdown"].map(lambda x: formatting.percent(-x if x else x, signed=bool(x)))
    table["ticks"] = rows["ticks"].map(lambda n: formatting.MISSING if pd.isna(n) else f"{int(n):,}")
    table["sources"] = rows["sources"].map(lambda s: ", ".join(s) if isinstance(s, list) else "")
    return table[list(TABLE_COLUMNS)].rename(columns=TABLE_COLUMNS).reset_index(drop=True)


def volatility_figure(daily: pd.DataFrame, annualized: bool = True) -> go.Figure:
    """Each coin's realized volatility per day (a line per coin; a day without 1-minute returns is a gap)."""
    column = "volatility_annualized" if annualized else "volatility"
    fig = go.Figure()
    for i, (coin, rows) in enumerate(daily.groupby("sensor_id", sort=False)):
        fig.add_trace(go.Scatter(
            x=rows["date"], y=rows[column] * 100, name=coin, mode="lines+markers" if len(rows) < 60 else "lines",
            line={"color": COIN_COLORS[i % len(COIN_COLORS)], "width": 1.6},
            customdata=(rows["coverage"] * 100).to_numpy()[:, None],
            hovertemplate=f"{coin} %{{x|%Y-%m-%d}}: %{{y:.2f}} %<br>coverage %{{customdata[0]:.1f}} %<extra></extra>"))
    title = "annualized, × √365" if annualized else "daily, not annualized"
    fig.update_layout(title=f"Realized volatility from 1-minute returns ({title})", height=380,
                      margin={"l": 10, "r": 10, "t": 50, "b": 10}, legend={"orientation": "h", "y": -0.15},
                      plot_bgcolor="white", hovermode="x unified")
    fig.update_yaxes(title="volatility (%)", ticksuffix=" %", gridcolor=GRID, rangemode="tozero")
    fig.update_xaxes(gridcolor=GRID)
    return fig


def correlation_matrix(pairs: pd.DataFrame, frequency: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(correlations, observations) as square coin x coin frames, filled both ways from the stored pairs."""
    rows = pairs[pairs["frequency"] == frequency]
    coins = sorted(set(rows["coin_a"]) | set(rows["coin_b"]))
    corr = pd.DataFrame(math.nan, index=coins, columns=coins)
    seen = pd.DataFrame(0, index=coins, columns=coins)
    for row in rows.itertuples():
        for a, b in ((row.coin_a, row.coin_b), (row.coin_b, row.coin_a)):
            corr.loc[a, b] = row.correlation
            seen.loc[a, b] = row.observations
    return corr, seen


def correlation_span(pairs: pd.DataFrame, frequency: str) -> tuple[int, int]:
    """(days between the first and last day the correlations cover, the most returns any two coins share)."""
    rows = pairs[pairs["frequency"] == frequency]
    if rows.empty:
        return 0, 0
    days = (pd.to_datetime(rows["end"]).max() - pd.to_datetime(rows["start"]).min()).days + 1
    shared = rows.loc[rows["coin_a"] != rows["coin_b"], "observations"]
    return int(days), int(shared.max()) if len(shared) and not pd.isna(shared.max()) else 0


def correlation_note(pairs: pd.DataFrame, frequency: str) -> str:
    """How much the heat map rests on, said plainly when it is little."""
    days, shared = correlation_span(pairs, frequency)
    note = (f"Rests on {days:,} day{'s' if days != 1 else ''} of prices: at most {shared:,} {frequency} return"
            f"{'s' if shared != 1 else ''} shared by two coins.")
    if days < FEW_DAYS:
        note += f" Fewer than {FEW_DAYS} days: a first look, not a measurement; it settles as the archive grows."
    return note


def correlation_heatmap(pairs: pd.DataFrame, frequency: str) -> go.Figure:
    """The correlation matrix of one frequency's returns: blue together, amber opposite, blank where undefined; the
    title says how many days it rests on."""
    corr, seen = correlation_matrix(pairs, frequency)
    text = corr.map(lambda v: "—" if pd.isna(v) else f"{v:.2f}")
    fig = go.Figure(go.Heatmap(
        z=corr.to_numpy(), x=list(corr.columns), y=list(corr.index), zmin=-1, zmax=1, zmid=0,
        colorscale=CORRELATION_COLORS, text=text.to_numpy(), texttemplate="%{text}", customdata=seen.to_numpy(),
        hovertemplate="%{y} / %{x}: %{text}<br>%{customdata} shared returns<extra></extra>",
        colorbar={"title": "ρ"}))
    span = pairs[pairs["frequency"] == frequency]
    days, _ = correlation_span(pairs, frequency)
    when = (f" · {span['start'].min()} to {span['end'].max()} (UTC), {days:,} day{'s' if days != 1 else ''}"
            if not span.empty else "")
    fig.update_layout(title=f"Correlation of {frequency} returns{when}", height=420,
                      margin={"l": 10, "r": 10, "t": 50, "b": 10}, plot_bgcolor="white")
    fig.update_yaxes(autorange="reversed")
    return fig
