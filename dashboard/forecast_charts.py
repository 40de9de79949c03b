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


def score_table(scores: pd.DataFrame) -> pd.DataFrame:
    """Model vs naive over each model's rolling window: MAE beside naive's, direction hit rate, points, verdict."""
    columns = ["Model", "Horizon", "MAE", "Naive MAE", "Direction hit rate", "Points scored", "Verdict"]
    rows = [[model_name(r.model), f"{int(r.horizon_min)} min", formatting.price(r.mae), formatting.price(r.naive_mae),
             _share(r.hit_rate), f"{int(r.points):,}", r.verdict]
            for r in scores.itertuples(index=False)]
    return pd.DataFrame(rows, columns=columns)


def headline(ticker: str, scores: pd.DataFrame) -> str:
    """The sentence above the table: which forecasts the chart draws, or plainly that no model beats naive."""
    if scores.empty:
        return f"No forecasts of {ticker} yet."
    skilled = sorted(_skilled(scores), key=lambda pair: (pair[1], pair[0]))
    if not skilled:
        return (f"No model beats the naive “no change” forecast for {ticker}, so no forecast is drawn: a forecast "
                "that does no better than “the price stays where it is” shows no skill.")
    named = ", ".join(f"the {model_name(m)} {h} min ahead" for m, h in skilled)
    return (f"Drawn on the chart: {named}, which beat{'s' if len(skilled) == 1 else ''} the naive “no change” "
            f"forecast for {ticker} by more than chance over the last scored points.")


def no_skill_sentences(scores: pd.DataFrame) -> list[str]:
    """One plain sentence for each model and horizon whose forecast is not drawn as skill."""
    sentences = []
    for r in scores.itertuples(index=False):
        if bool(r.beats_naive):
            continue
        what = f"The {model_name(r.model)} ({int(r.horizon_min)} min ahead)"
        if r.points < r.min_points:
            sentences.append(f"{what} has {int(r.points):,} of the {int(r.min_points):,} scored points needed to "
                             "judge it against the naive no-change forecast: its forecast is not shown yet.")
        elif r.mae < r.naive_mae:
            sentences.append(f"{what} has a lower error than the naive no-change forecast over the last "
                             f"{int(r.points):,} points, but not by more than chance explains: its forecast is not "
                             "shown as skill.")
        else:
            sentences.append(f"{what} has not beaten the naive no-change forecast over the last {int(r.points):,} "
                             "points: its forecast is not shown as skill.")
    return sentences
