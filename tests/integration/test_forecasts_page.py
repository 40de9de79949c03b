"""Requires the running MongoDB server: the history tab's forecast panel (AppTest, no browser) on what the worker
stores, draws the forecast where a model beats naive and says plainly when none does."""

from __future__ import annotations

import datetime as dt
import json

import pandas as pd
import pytest
from pymongo import MongoClient
from streamlit.testing.v1 import AppTest

from cryptoapp.forecasts.documents import forecast_documents, score_documents
from cryptoapp.forecasts.features import Bar
from cryptoapp.forecasts.online import CoinForecaster
from cryptoapp.schema import UTC
from tests.unit.test_forecasts import random_walk, sine

pytestmark = pytest.mark.integration
BARS = 1400


@pytest.fixture
def db(services, unique_name, monkeypatch):
    """A database of this test's own (MONGO_DB), dropped afterwards; the page reads the same environment."""
    monkeypatch.setenv("MONGO_URI", services["mongo_uri"])
    monkeypatch.setenv("MONGO_DB", unique_name)
    client = MongoClient(services["mongo_uri"], tz_aware=True, serverSelectionTimeoutMS=5000)
    yield client[unique_name]
    client.drop_database(unique_name)
    client.close()


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
    """The history tab as far as the panel goes: a chart of the last 24 h, then the one call."""
    import datetime as dt

    import pandas as pd
    import plotly.graph_objects as go
    import streamlit as st

    from cryptoapp.settings import load
    from dashboard import forecasts

    end = dt.datetime.now(dt.timezone.utc)
    frame = pd.DataFrame({"timestamp": pd.to_datetime([], utc=True), "value": []})
    frame.attrs.update(start=end - dt.timedelta(hours=24), end=end)
    fig = go.Figure()
    fig.update_xaxes(range=[frame.attrs["start"], frame.attrs["end"]])
    fig = forecasts.render(load(), "BTC", frame, fig)
    st.plotly_chart(fig, key="history_chart")


def run_page() -> tuple[AppTest, dict]:
    at = AppTest.from_function(history_tab, default_timeout=60)
    at.run()
    assert not at.exception, at.exception
    [chart] = at.get("plotly_chart")
    return at, json.loads(chart.proto.spec)


def test_on_a_random_walk_no_forecast_is_drawn_and_the_page_says_so(db):
    seed(db, random_walk(BARS, seed=2))
    at, spec = run_page()
    assert [i.value for i in at.info] == [
        "No model beats the naive “no change” forecast for BTC, so no forecast is drawn: a forecast that does no "
        "better than “the price stays where it is” shows no skill."]
    assert not at.success and not at.error
    assert not [t for t in spec["data"] if "forecast" in (t.get("name") or "")]
    table = at.dataframe[0].value
    assert list(table["Model"]) == ["linear model", "SNARIMAX model"] * 2
    assert list(table["Horizon"]) == ["5 min", "5 min", "60 min", "60 min"]
    assert set(table["Verdict"]) <= {"does not beat naive", "lower MAE, within chance"}
    assert len([c for c in at.caption if "not shown as skill" in c.value]) == 4


def test_where_a_model_beats_naive_its_path_and_band_are_drawn_past_the_window(db):
    minutes = seed(db, sine(BARS))
    at, spec = run_page()
    assert at.success[0].value.startswith("Drawn on the chart: the linear model 5 min ahead")
    names = [t.get("name") for t in spec["data"]]
    assert "linear model forecast" in names and "linear model: 80 % of its recent errors" in names
    # The window ends now; the 60-minute forecast's target bar ends an hour after the newest bar: the axis reaches it.
    assert pd.Timestamp(spec["layout"]["xaxis"]["range"][1]) == pd.Timestamp(minutes[-1]) + pd.Timedelta(minutes=61)
    assert "beats naive" in set(at.dataframe[0].value["Verdict"])
