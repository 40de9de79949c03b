"""The forecast on the history chart only where it beats naive, the model-vs-naive table, the plain sentence."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from cryptoapp.forecasts.documents import forecast_documents, score_documents
from cryptoapp.forecasts.online import CoinForecaster
from dashboard import forecast_charts, formatting
from dashboard.frames import typed
from tests.unit.test_forecasts import bars, minute, random_walk, sine


def frames(closes, horizons=(5, 60)) -> tuple[CoinForecaster, pd.DataFrame, pd.DataFrame]:
    """What the dashboard reads after the worker ran on `closes`: forecasts and scores frames."""
    forecaster = CoinForecaster("BTC", horizons=horizons)
    made = []
    for bar in bars(closes):
        made.extend(forecaster.update(bar).forecasts)
    forecasts = pd.DataFrame([{k: v for k, v in d.items() if k != "_id"} for d in forecast_documents(made)])
    forecasts = typed(forecasts, ("made_at", "target_at"), ("sensor_id", "model"))
    scores = pd.DataFrame([{k: v for k, v in d.items() if k != "_id"}
                           for d in score_documents(forecaster.score_rows())])
    scores = typed(scores, ("as_of",), ("sensor_id", "model", "verdict"))
    return forecaster, forecasts, scores


def traces(fig, part: str):
    return [t for t in fig.data if part in (t.name or "")]


def test_a_model_that_beats_naive_is_drawn_with_its_band_and_one_that_does_not_is_named_instead():
    forecaster, forecasts, scores = frames(sine(1400))
    fig = forecast_charts.add_forecasts(go.Figure(), forecasts, scores)
    [linear] = traces(fig, "linear model forecast")
    newest = [f for f in forecaster.latest_forecasts() if f.model == "linear"]
    # From the last close, at the end of its bar, to each horizon's forecast at the end of the target bar.
    assert list(linear.y) == [newest[0].base_close, *(f.predicted_close for f in newest)]
    assert pd.Timestamp(linear.x[0]) == pd.Timestamp(minute(1399) + pd.Timedelta(minutes=1))
    assert pd.Timestamp(linear.x[-1]) == pd.Timestamp(minute(1399 + 60 + 1))
    [band] = traces(fig, "linear model: 80 % of its recent errors")
    assert list(band.y) == [newest[0].base_close, *(f.band_high for f in newest), *(f.band_low for f in newest[::-1]),
                            newest[0].base_close]
    # SNARIMAX beats naive at 5 minutes only: its path stops there, and the line under the chart names what is drawn.
    [snarimax] = traces(fig, "SNARIMAX model forecast")
    assert len(snarimax.y) == 2
    assert forecast_charts.verdict_line("BTC", scores) == (
        "Forecasts that beat the naive “no change” forecast for BTC, drawn on the chart: linear model 5 min, SNARIMAX "
        "model 5 min, linear model 60 min ahead.")
    assert "choose it as the source" in forecast_charts.verdict_line("BTC", scores, drawn_here=False)
    # The chart's time axis has to reach the end of the furthest target bar drawn.
    assert forecast_charts.drawn_until(forecasts, scores) == pd.Timestamp(minute(1399 + 60 + 1))


def test_on_a_random_walk_nothing_is_drawn_as_skill_and_the_page_says_so():
    _, forecasts, scores = frames(random_walk(1400, seed=2))
    fig = forecast_charts.add_forecasts(go.Figure(), forecasts, scores)
    assert not traces(fig, "forecast") and not traces(fig, "recent errors")
    assert forecast_charts.drawn_until(forecasts, scores) is None
    assert forecast_charts.verdict_line("BTC", scores) == (
        "No forecast of BTC beats the naive “no change” forecast, so none is drawn.")
    assert set(forecast_charts.score_table(scores)["Verdict"]) <= {"does not beat naive", "lower MAE, within chance"}


def test_the_table_sets_each_model_beside_naive():
    _, _, scores = frames(sine(300), horizons=(5,))
    table = forecast_charts.score_table(scores)
    assert list(table.columns) == ["Model", "Horizon", "MAE", "Naive MAE", "Direction hit rate", "Points scored",
                                   "Verdict"]
    linear = table[table["Model"] == "linear model"].iloc[0]
    row = scores[scores["model"] == "linear"].iloc[0]
    assert linear["Horizon"] == "5 min" and linear["Points scored"] == "290"
    assert linear["MAE"] == forecast_charts.error(row["mae"])
    assert linear["Naive MAE"] == forecast_charts.error(row["naive_mae"])
    assert row["mae"] < 0.6 * row["naive_mae"]
    assert linear["Verdict"] == "beats naive"


def test_a_model_without_enough_points_is_not_judged_yet():
    _, forecasts, scores = frames(sine(150), horizons=(5,))
    assert not forecast_charts.add_forecasts(go.Figure(), forecasts, scores).data
    assert forecast_charts.drawn_until(forecasts, scores) is None
    assert forecast_charts.verdict_line("BTC", scores) == (
        "Forecasts of BTC are not judged yet (140 of 200 scored points), so none is drawn.")


def test_an_error_is_written_to_three_figures_at_most():
    assert [forecast_charts.error(x) for x in (412.34, 12.345, 1.2345, 0.0012345, float("nan"))] == [
        "$412", "$12.3", "$1.23", "$0.00123", formatting.MISSING]
    assert forecast_charts.error(1234.5, "usdt") == "1,234 USDT"
