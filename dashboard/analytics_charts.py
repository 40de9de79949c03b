"""Plotly figures and tables for the Analytics tab (no streamlit import): daily statistics, volatility, correlation heat map."""

from __future__ import annotations

import math

import pandas as pd
import plotly.graph_objects as go

from dashboard.chart_layout import COIN_COLORS, GRID

# Shown as percentages in the table; the rest as they are.
PERCENT_COLUMNS = ("return", "volatility", "volatility_annualized", "max_drawdown", "coverage")
TABLE_COLUMNS = {"date": "Day (UTC)", "open": "Open", "high": "High", "low": "Low", "close": "Close",
                 "return": "Return %", "volatility": "Volatility % (daily)",
                 "volatility_annualized": "Volatility % (annualized)", "max_drawdown": "Max drawdown %",
                 "ticks": "Ticks", "coverage": "Coverage %", "sources": "Sources"}


def daily_table(daily: pd.DataFrame, coin: str) -> pd.DataFrame:
    """One coin's days, newest first, with ratios as percentages and the columns named for people."""
    rows = daily[daily["sensor_id"] == coin].sort_values("date", ascending=False)
    table = rows[list(TABLE_COLUMNS)].copy()
    for column in PERCENT_COLUMNS:
        table[column] = table[column] * 100
    table["date"] = table["date"].dt.strftime("%Y-%m-%d")
    table["sources"] = table["sources"].map(lambda s: ", ".join(s) if isinstance(s, list) else "")
    return table.rename(columns=TABLE_COLUMNS).reset_index(drop=True)


def table_formats(table: pd.DataFrame) -> dict[str, str]:
    """Display formats of daily_table's columns: percentages with two decimals, prices to six significant digits."""
    percent = {TABLE_COLUMNS[c] for c in PERCENT_COLUMNS}
    prices = {TABLE_COLUMNS[c] for c in ("open", "high", "low", "close")}
    return {name: "{:.2f} %" if name in percent else "{:,.6g}" if name in prices else "{:,.0f}"
            for name in table.columns if name in percent | prices | {TABLE_COLUMNS["ticks"]}}


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


def correlation_heatmap(pairs: pd.DataFrame, frequency: str) -> go.Figure:
    """The correlation matrix of one frequency's returns: red together, blue opposite, blank where undefined."""
    corr, seen = correlation_matrix(pairs, frequency)
    text = corr.map(lambda v: "—" if pd.isna(v) else f"{v:.2f}")
    fig = go.Figure(go.Heatmap(
        z=corr.to_numpy(), x=list(corr.columns), y=list(corr.index), zmin=-1, zmax=1, zmid=0,
        colorscale="RdBu_r", text=text.to_numpy(), texttemplate="%{text}", customdata=seen.to_numpy(),
        hovertemplate="%{y} / %{x}: %{text}<br>%{customdata} shared returns<extra></extra>",
        colorbar={"title": "ρ"}))
    span = pairs[pairs["frequency"] == frequency]
    when = f" · {span['start'].min()} to {span['end'].max()} (UTC)" if not span.empty else ""
    fig.update_layout(title=f"Correlation of {frequency} returns{when}", height=420,
                      margin={"l": 10, "r": 10, "t": 50, "b": 10}, plot_bgcolor="white")
    fig.update_yaxes(autorange="reversed")
    return fig
