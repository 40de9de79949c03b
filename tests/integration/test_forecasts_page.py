"""Requires the running MongoDB server: the history tab's forecast panel (AppTest, no browser) on what the worker
stores, draws the forecast where a model beats naive and says plainly, in one line under the chart, when none does."""

from __future__ import annotations

import datetime as dt
import json
import re

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from cryptoapp.forecasts.documents import forecast_documents, score_documents
from cryptoapp.forecasts.features import Bar
from cryptoapp.forecasts.online import CoinForecaster
from cryptoapp.schema import UTC
from tests.support.pages import function_page
from tests.unit.test_forecasts import random_walk, sine

pytestmark = pytest.mark.integration
BARS = 1400


@pytest.fixture
def db(page_db):
    return page_db


def seed(db, closes) -> list[dt.datetime]:
    """What the worker stores after the bars of `closes`, the newest a few minutes ago: its forecasts of the last
    two hours and its scores. Returns the bars' minutes."""
    newest = dt.datetime.now(UTC).replace(second=0, microsecond=0) - dt.timedelta(minutes=3)
    minutes = [newest - dt.timedelta(minutes=len(closes) - 1 - i) for i in range(len(closes))]
    forecaster = CoinForecaster("BTC")
    made = [f for at, c in zip(minutes, closes) for f in forecaster.update(Bar("BTC", at, float(c), 1e9)).forecasts]
    db.forecasts.insert_many(forecast_documents(f for f in made if f.made_at >= newest - dt.timedelta(hours=2)))
    db.forecast_scores.insert_many(score_documents(forecaster.score_rows()))
    return minutes


def history_tab():
    """The history tab as far as the forecasts go: the chart of BTC's last two hours of minute bars (what the worker's
    views hold, here the seeded closes) with the forecasts drawn on it, then the verdict under it."""
    import datetime as dt

    import pandas as pd
    import streamlit as st

    from cryptoapp.settings.dashboard import load
    from dashboard import forecasts, history_charts
    from dashboard.frames import BAR_COLUMNS

    end = dt.datetime.now(dt.timezone.utc)
    closes = st.session_state["closes"][-120:]
    newest = end.replace(second=0, microsecond=0) - dt.timedelta(minutes=3)
    times = pd.date_range(end=newest, periods=len(closes), freq="1min")
    frame = pd.DataFrame({"timestamp": times, "sensor_id": "BTC", "series": "BTC", "open": closes, "high": closes,
                          "low": closes, "close": closes, "ticks": 1, "volume_24h": 1e9,
                          "sources": [("coingecko",)] * len(closes), "currency": "usd"}, columns=list(BAR_COLUMNS))
    frame.attrs.update(resolution="1m", start=end - dt.timedelta(hours=2), end=end)
    fig = history_charts.history_figure(frame, "BTC", start=frame.attrs["start"], end=frame.attrs["end"])
    shown = forecasts.draw(load(), "BTC", frame, fig, series=st.session_state.get("series", "BTC"))
    st.plotly_chart(fig, key="history_chart")
    forecasts.verdict(shown)


def run_page(closes, series: str = "BTC") -> tuple[AppTest, dict]:
    at = function_page(history_tab, closes=[float(c) for c in closes], series=series)
    [chart] = at.get("plotly_chart")
    return at, json.loads(chart.proto.spec)


def test_on_a_random_walk_no_forecast_is_drawn_and_the_page_says_so(db):
    closes = random_walk(BARS, seed=2)
    seed(db, closes)
    at, spec = run_page(closes)
    assert [m.value for m in at.markdown] == [
        ":material/info: No forecast of BTC beats the naive “no change” forecast, so none is drawn."]
    assert not at.error and not at.info
    assert at.expander[0].label == "Forecast scores: each model beside the naive forecast"
    assert not [t for t in spec["data"] if "forecast" in (t.get("name") or "")]
    table = at.dataframe[0].value
    assert list(table["Model"]) == ["linear model", "SNARIMAX model"] * 2
    assert list(table["Horizon"]) == ["5 min", "5 min", "60 min", "60 min"]
    assert set(table["Verdict"]) <= {"does not beat naive", "lower MAE, within chance"}
    assert all(re.fullmatch(r"\$[\d,]+(\.\d{1,2})?", mae) for mae in table["MAE"]), list(table["MAE"])  # 3 figures


def test_where_a_model_beats_naive_its_path_and_band_are_drawn_past_the_window(db):
    closes = sine(BARS)
    minutes = seed(db, closes)
    at, spec = run_page(closes)
    assert at.markdown[0].value.startswith(":material/trending_up: Forecasts that beat the naive “no change” forecast "
                                           "for BTC, drawn on the chart: linear model 5 min")
    path = next(t for t in spec["data"] if t.get("name") == "linear model forecast")
    assert path.get("yaxis", "y") == "y" and path["y"][0] == pytest.approx(float(closes[-1]))  # on the price panel
    assert "linear model: 80 % of its recent errors" in [t.get("name") for t in spec["data"]]
    # The window ends now; the 60-minute forecast's target bar ends an hour after the newest bar: every panel's time
    # axis reaches it.
    reach = pd.Timestamp(minutes[-1]) + pd.Timedelta(minutes=61)
    axes = [k for k in spec["layout"] if k.startswith("xaxis")]
    assert len(axes) == 2 and all(pd.Timestamp(spec["layout"][k]["range"][1]) == reach for k in axes)
    assert "beats naive" in set(at.dataframe[0].value["Verdict"])
    # On an exchange's chart of the same coin nothing is drawn (forecasts come from CoinGecko's series); the page says
    # where to see them.
    at, spec = run_page(closes, series="BTC_binanceus")
    assert not [t for t in spec["data"] if "forecast" in (t.get("name") or "")]
    assert "drawn on CoinGecko's chart of the coin (choose it as the source)" in at.markdown[0].value
