"""Requires the running MongoDB server: the Analytics tab (AppTest, no browser) on known stored results, and its empty state."""

import datetime as dt
import json

import pytest

from cryptoapp.schema import ANALYTICS_CORRELATION, ANALYTICS_DAILY, ANALYTICS_RUNS
from tests.support.pages import function_page

pytestmark = pytest.mark.integration
UTC = dt.timezone.utc


def tab():
    """The tab alone, as dashboard/app.py will call it."""
    import os

    from dashboard import analytics
    from cryptoapp.settings.dashboard import load

    analytics.render(load(os.environ))


@pytest.fixture
def db(page_db):
    return page_db


def run_tab():
    return function_page(tab)


def day(coin, date, close, ret, vol, coverage, sources=("coingecko",)):
    return {"_id": f"{coin}_{date}", "sensor_id": coin, "date": date, "open": 100.0, "high": 120.0, "low": 90.0,
            "close": close, "return": ret, "volatility": vol, "volatility_annualized": None if vol is None else vol * 365 ** 0.5,
            "max_drawdown": 0.25, "ticks": 1441, "minutes": int(coverage * 1440), "coverage": coverage,
            "returns_1m": 1439, "first_tick": dt.datetime(2025, 11, 20, tzinfo=UTC),
            "last_tick": dt.datetime(2025, 11, 20, 23, 59, tzinfo=UTC), "sources": list(sources)}


def test_without_results_the_tab_says_how_to_make_them(db):
    at = run_tab()
    info = " ".join(i.value for i in at.info)
    assert "`make analytics` does" in info and "about 3 min" in info and db.name in info
    assert "make run" not in info  # the worker does not fill this tab
    assert not at.get("plotly_chart")


def test_results_show_the_table_charts_and_the_last_run(db):
    db[ANALYTICS_DAILY].insert_many([day("BNB", "2025-11-21", 850.0, 0.01, 0.2, 1.0),
                                     day("BTC", "2025-11-20", 87_000.0, 0.1, 0.2, 1.0),
                                     day("BTC", "2025-11-21", 121_000.0, 0.1, None, 0.25),
                                     day("ETH", "2025-11-21", 3000.0, None, 0.3, 0.5)])
    db[ANALYTICS_CORRELATION].insert_many([
        {"_id": f"daily_{a}_{b}", "frequency": "daily", "coin_a": a, "coin_b": b, "correlation": c, "observations": 2,
         "start": "2025-11-20", "end": "2025-11-21"} for a, b, c in (("BTC", "BTC", 1.0), ("BTC", "ETH", None),
                                                                     ("ETH", "ETH", 1.0))])
    db[ANALYTICS_RUNS].insert_one({"_id": "2025-11-21T12:00:00Z", "computed_at": dt.datetime(2025, 11, 21, 12, tzinfo=UTC),
                                   "ticks": 4323, "coins": ["BTC", "ETH"], "first_day": "2025-11-20",
                                   "last_day": "2025-11-21", "master": "local[*]", "spark_version": "4.3.0",
                                   "jobs_s": 11.0})
    at = run_tab()
    caption = " ".join(c.value for c in at.caption)
    assert "Last run: 2025-11-21 12:00 UTC" in caption and "4,323 ticks of 2 coins" in caption
    assert "make analytics" in caption and "local[*]" in caption
    assert at.selectbox(key="analytics_coin").value == "BTC"  # not the alphabet's first, BNB
    table = at.dataframe[0].value
    assert list(table["Day (UTC)"]) == ["2025-11-21", "2025-11-20"]  # newest first
    assert list(table["Close"]) == ["$121,000.00", "$87,000.00"] and list(table["Open"]) == ["$100.0000"] * 2
    assert list(table["Coverage"]) == ["25.00 %", "100.00 %"]  # the day with gaps says so
    assert list(table["Volatility (daily)"]) == ["—", "20.00 %"]  # not computable: shown as missing
    assert list(table["Return"]) == ["+10.00 %"] * 2
    assert list(table["Max drawdown"]) == ["-25.00 %"] * 2  # a fall
    assert list(table["Ticks"]) == ["1,441"] * 2
    heat = json.loads(at.get("plotly_chart")[1].proto.spec)
    assert heat["data"][0]["x"] == ["BTC", "ETH"] and heat["data"][0]["text"] == [["1.00", "—"], ["—", "1.00"]]
    assert "#0369a1" in str(heat["data"][0]["colorscale"])  # the theme's sky blue, not red and blue
    assert "2 days" in heat["layout"]["title"]["text"]
    assert any(c.value.startswith("Rests on 2 days of prices: at most 2 daily returns shared by two coins. Fewer "
                                  "than 30 days: a first look") for c in at.caption)
