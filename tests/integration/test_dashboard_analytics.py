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
    assert any("make analytics" in info.value and db.name in info.value for info in at.info)
    assert not at.get("plotly_chart")


def test_results_show_the_table_charts_and_the_last_run(db):
    db[ANALYTICS_DAILY].insert_many([day("BTC", "2025-11-20", 110.0, 0.1, 0.2, 1.0),
                                     day("BTC", "2025-11-21", 121.0, 0.1, None, 0.25),
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
    table = at.dataframe[0].value
    assert list(table["Day (UTC)"]) == ["2025-11-21", "2025-11-20"]  # newest first
    assert list(table["Coverage %"]) == [25.0, 100.0]  # the day with gaps says so
    assert table["Volatility % (daily)"].isna().tolist() == [True, False]  # not computable: shown as missing
    heat = json.loads(at.get("plotly_chart")[1].proto.spec)["data"][0]
    assert heat["x"] == ["BTC", "ETH"] and heat["text"] == [["1.00", "—"], ["—", "1.00"]]
