"""Forecasts on the history chart (path and band, only where the model beats naive), the model-vs-naive table and
the plain sentences for a model that does not; plotly and pandas only (no streamlit import)."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from cryptoapp.schema import RESOLUTIONS
from dashboard import formatting

MODEL_NAMES = {"linear": "linear model", "snarimax": "SNARIMAX model"}
MODEL_COLORS = {"linear": "#7c3aed", "snarimax": "#b45309"}
OTHER_COLOR = "#be185d"
# Times in the documents are bar starts; a bar's close is its price at the bar's end.
BAR = pd.Timedelta(seconds=RESOLUTIONS["1m"])


def model_name(model: str) -> str:
    return MODEL_NAMES.get(model, f"{model} model")


def _skilled(scores: pd.DataFrame) -> set[tuple[str, int]]:
    """(model, horizon) pairs whose verdict is that they beat the naive forecast."""
    if scores.empty:
        return set()
    rows = scores[scores["beats_naive"].astype(bool)]
    return {(m, int(h)) for m, h in zip(rows["model"], rows["horizon_min"])}


def latest_forecasts(forecasts: pd.DataFrame) -> pd.DataFrame:
    """Each model's forecasts made from its newest bar (one row per horizon)."""
    if forecasts.empty:
        return forecasts
    newest = forecasts.groupby("model")["made_at"].transform("max")
    return forecasts[forecasts["made_at"] == newest].sort_values(["model", "horizon_min"]).reset_index(drop=True)


def add_forecasts(fig: go.Figure, forecasts: pd.DataFrame, scores: pd.DataFrame, row=None, col=None) -> go.Figure:
    """Draws, for each model, the path from the close it started from to its forecast at each horizon where
    it beats naive, with its interval band where it has one; a model that does not beat naive is not drawn."""
    skilled = _skilled(scores)
    where = {} if row is None else {"row": row, "col": col}
    for model, rows in latest_forecasts(forecasts).groupby("model", sort=True):
        rows = rows[[(model, int(h)) in skilled for h in rows["horizon_min"]]]
        if rows.empty:
            continue
        color = MODEL_COLORS.get(model, OTHER_COLOR)
        name = model_name(model)
        start_x = rows["made_at"].iloc[0] + BAR
        base = float(rows["base_close"].iloc[0])
        xs = [start_x, *(rows["target_at"] + BAR)]
        banded = rows.dropna(subset=["band_low", "band_high"])
        if not banded.empty:
            level = int(round(100 * float(banded["band_level"].iloc[0])))
            band_x = [start_x, *(banded["target_at"] + BAR)]
            fig.add_trace(go.Scatter(
                x=band_x + band_x[::-1], y=[base, *banded["band_high"], *banded["band_low"][::-1], base],
                fill="toself", fillcolor=color, opacity=0.15, line={"width": 0}, hoverinfo="skip",
                name=f"{name}: {level} % of its recent errors", legendgroup=model), **where)
        horizons = [f"{int(h)} min" for h in rows["horizon_min"]]
        fig.add_trace(go.Scatter(
            x=xs, y=[base, *rows["predicted_close"]], customdata=["last close", *horizons],
            mode="lines+markers", line={"color": color, "width": 2, "dash": "dash"}, marker={"size": 7},
            name=f"{name} forecast", legendgroup=model,
            hovertemplate="%{y:,.6~f} · %{customdata}<extra>" + name + "</extra>"), **where)
    return fig


def drawn_until(forecasts: pd.DataFrame, scores: pd.DataFrame) -> pd.Timestamp | None:
    """The end of the furthest target bar add_forecasts draws (None when it draws nothing): where the chart's time
    axis has to reach for the path to show."""
    skilled = _skilled(scores)
    rows = latest_forecasts(forecasts)
    if rows.empty:
        return None
    drawn = rows[[(m, int(h)) in skilled for m, h in zip(rows["model"], rows["horizon_min"])]]
    return None if drawn.empty else drawn["target_at"].max() + BAR


def _share(x: float) -> str:
    return formatting.MISSING if pd.isna(x) else f"{100 * x:.1f} %"


def error(x: float | None, currency: str | None = "usd") -> str:
    """A forecast's mean absolute error to three figures at most: $412, $12.3, $1.23, $0.00123 (an error of a fifth of
    a cent on a $87,000 price is no information)."""
    if x is None or pd.isna(x):
        return formatting.MISSING
    number = f"{x:,.0f}" if abs(x) >= 100 else f"{x:.1f}" if abs(x) >= 10 else f"{x:.2f}" if abs(x) >= 1 else f"{x:.3g}"
    # formatting.price's way with currencies ($ for the dollar, the code after the number for any other), at fewer digits
    return f"${number}" if not currency or currency.lower() == "usd" else f"{number} {currency.upper()}"


def score_table(scores: pd.DataFrame) -> pd.DataFrame:
    """Model vs naive over each model's rolling window: MAE beside naive's, direction hit rate, points, verdict."""
    columns = ["Model", "Horizon", "MAE", "Naive MAE", "Direction hit rate", "Points scored", "Verdict"]
    rows = [[model_name(r.model), f"{int(r.horizon_min)} min", error(r.mae), error(r.naive_mae), _share(r.hit_rate),
             f"{int(r.points):,}", r.verdict]
            for r in scores.itertuples(index=False)]
    return pd.DataFrame(rows, columns=columns)


def verdict_line(ticker: str, scores: pd.DataFrame, drawn_here: bool = True) -> str:
    """The forecasts' verdict in one line, under the chart: which forecasts are drawn, or plainly why none is."""
    if scores.empty:
        return f"No forecasts of {ticker} yet."
    skilled = sorted(_skilled(scores), key=lambda pair: (pair[1], pair[0]))
    if skilled:
        named = ", ".join(f"{model_name(m)} {h} min" for m, h in skilled)
        where = "drawn on the chart" if drawn_here else "drawn on CoinGecko's chart of the coin (choose it as the source)"
        return f"Forecasts that beat the naive “no change” forecast for {ticker}, {where}: {named} ahead."
    if (scores["points"] < scores["min_points"]).all():
        scored, needed = int(scores["points"].max()), int(scores["min_points"].min())
        return (f"Forecasts of {ticker} are not judged yet ({scored:,} of {needed:,} scored points), so none is drawn.")
    return f"No forecast of {ticker} beats the naive “no change” forecast, so none is drawn."
