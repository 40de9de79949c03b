"""Requires MongoDB and Java 17: `make analytics` (export, spark-submit on local Spark, load) gives hand-checked numbers.

One `make analytics` run for the whole module (one Spark start). The data set is small and built so that
each number can be worked out by hand; the expected values are computed here from their definitions with
plain Python, never with the jobs' code.
"""

import datetime as dt
import math
import os
import random
import statistics
import subprocess

import pytest
from pymongo import MongoClient

from cryptoapp.prices.models import PriceTick
from cryptoapp.schema import ANALYTICS_CORRELATION, ANALYTICS_DAILY, ANALYTICS_RUNS
from cryptoapp.storage.ticks import to_document
from testkit.processes import ROOT

pytestmark = pytest.mark.integration
UTC = dt.timezone.utc
D1, D2, D3 = dt.date(2025, 11, 19), dt.date(2025, 11, 20), dt.date(2025, 11, 21)


def at(day: dt.date, minute: int, second: int = 0) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, tzinfo=UTC) + dt.timedelta(minutes=minute, seconds=second)


def btc_ticks() -> list[tuple[dt.datetime, float]]:
    """D1: 100 all day. D2: 100, then 120 at 10:00, 90 at 10:01:00, 95 at 10:01:30, 110 from 10:02 on.
    D3 has gaps: 110 in minutes 0-179, nothing until 04:00, 100 in minutes 240-419, and 121 at 06:59:30."""
    ticks = [(at(D1, m), 100.0) for m in range(1440)]
    for m in range(1440):
        price = 100.0 if m < 600 else {600: 120.0, 601: 90.0}.get(m, 110.0)
        ticks.append((at(D2, m), price))
    ticks.append((at(D2, 601, 30), 95.0))
    ticks += [(at(D3, m, s), 110.0) for m in range(180) for s in (0, 30)]
    ticks += [(at(D3, m, s), 100.0) for m in range(240, 420) for s in (0, 30)]
    ticks[-1] = (at(D3, 419, 30), 121.0)
    return ticks


def mirrored_ticks() -> tuple[list, list]:
    """ETH and SOL: a tick every 10 minutes over the three days, one price per hour; each hour ETH moves by
    r and SOL by -r, so their hourly returns are exact opposites (correlation -1)."""
    rng = random.Random(7)
    eth, sol, p, q = [], [], 3000.0, 150.0
    for hour in range(72):
        r = rng.uniform(-0.02, 0.02)
        p, q = p * (1 + r), q * (1 - r)
        for m in range(0, 60, 10):
            when = at(D1, hour * 60 + m)
            eth.append((when, p))
            sol.append((when, q))
    return eth, sol


def hourly_returns(ticks) -> dict[dt.datetime, float]:
    """An hour's last price over the previous hour's last price, minus 1, for adjacent hours only."""
    closes = {}
    for when, price in sorted(ticks):
        closes[when.replace(minute=0, second=0)] = price
    return {h: closes[h] / closes[h - dt.timedelta(hours=1)] - 1
            for h in closes if h - dt.timedelta(hours=1) in closes}


def daily_closes(ticks) -> dict[dt.date, float]:
    closes = {}
    for when, price in sorted(ticks):
        closes[when.date()] = price
    return closes


def pearson(x: dict, y: dict):
    common = sorted(set(x) & set(y))
    try:
        return statistics.correlation([x[k] for k in common], [y[k] for k in common]), len(common)
    except statistics.StatisticsError:  # fewer than two points, or one series constant: undefined
        return None, len(common)


@pytest.fixture(scope="module")
def analytics(services, tmp_path_factory):
    """Seeds the data set into a database of its own, runs `make analytics` on it, yields that database."""
    name = f"test-analytics-{os.getpid()}"
    client = MongoClient(services["mongo_uri"], tz_aware=True)
    eth, sol = mirrored_ticks()
    docs = [to_document(PriceTick(ticker=coin, timestamp=when, value=price, source="coingecko"), at(D3, 1439))
            for coin, ticks in (("BTC", btc_ticks()), ("ETH", eth), ("SOL", sol)) for when, price in ticks]
    client[name].prices.insert_many(docs)
    work = tmp_path_factory.mktemp("analytics")
    env = {**os.environ, "MONGO_DB": name, "CRYPTOAPP_EXTERNAL_SERVICES": "1"}
    try:
        run = subprocess.run(["make", "analytics", f"ANALYTICS_DIR={work}"], cwd=ROOT, env=env,
                             capture_output=True, text=True, timeout=600)
        assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
        yield client[name], work, env, run
    finally:
        client.drop_database(name)
        client.close()


def daily(db, coin: str, day: dt.date) -> dict:
    return db[ANALYTICS_DAILY].find_one({"_id": f"{coin}_{day.isoformat()}"})


def test_make_analytics_prints_the_spark_submit_line_and_its_summary(analytics):
    _, work, _, run = analytics
    assert "spark-submit --master 'local[*]'" in run.stderr
    assert "analytics: 9 coin-days of 3 coins" in run.stdout
    assert "analytics load: daily 9 new" in run.stdout


def test_daily_return_ohlc_and_max_drawdown_of_a_known_day(analytics):
    day = daily(analytics[0], "BTC", D2)
    assert (day["open"], day["high"], day["low"], day["close"]) == (100.0, 120.0, 90.0, 110.0)
    assert day["return"] == pytest.approx(110 / 100 - 1, rel=1e-12)  # vs D1's close of 100
    assert day["max_drawdown"] == pytest.approx(1 - 90 / 120, rel=1e-12)  # from the 120 high to the 90 tick
    assert (day["ticks"], day["minutes"], day["coverage"], day["returns_1m"]) == (1441, 1440, 1.0, 1439)
    assert daily(analytics[0], "BTC", D1)["return"] is None  # no previous day: no return, not 0


def test_volatility_from_one_minute_last_prices(analytics):
    # Minute 10:01 ends at 95 (its 10:01:30 tick), so the non-zero 1-minute log returns are 100->120, 120->95, 95->110.
    expected = math.sqrt(math.log(120 / 100) ** 2 + math.log(95 / 120) ** 2 + math.log(110 / 95) ** 2)
    day = daily(analytics[0], "BTC", D2)
    assert day["volatility"] == pytest.approx(expected, rel=1e-12)
    assert day["volatility_annualized"] == pytest.approx(expected * math.sqrt(365), rel=1e-12)


def test_a_day_with_gaps_reports_its_coverage_and_no_return_across_a_gap(analytics):
    day = daily(analytics[0], "BTC", D3)
    assert day["coverage"] == 360 / 1440 and day["minutes"] == 360 and day["ticks"] == 720
    assert day["returns_1m"] == 179 + 179  # 02:59 -> 04:00 spans the gap: not a 1-minute return
    assert day["volatility"] == pytest.approx(math.log(121 / 100), rel=1e-12)  # the 110 -> 100 jump is not in it
    assert day["return"] == pytest.approx(121 / 110 - 1, rel=1e-12)
    assert day["max_drawdown"] == pytest.approx(1 - 100 / 110, rel=1e-12)


def test_correlations_match_pearson_by_hand(analytics):
    db = analytics[0]
    btc = btc_ticks()
    eth, sol = mirrored_ticks()
    stored = {d["_id"]: d for d in db[ANALYTICS_CORRELATION].find()}
    assert stored["hourly_ETH_SOL"]["correlation"] == pytest.approx(-1.0, abs=1e-9)
    assert stored["hourly_ETH_ETH"]["correlation"] == pytest.approx(1.0, abs=1e-12)
    for a, b, x, y in (("BTC", "ETH", btc, eth), ("BTC", "SOL", btc, sol)):
        expected, n = pearson(hourly_returns(x), hourly_returns(y))
        assert stored[f"hourly_{a}_{b}"]["observations"] == n
        assert stored[f"hourly_{a}_{b}"]["correlation"] == pytest.approx(expected, rel=1e-9)
    daily_returns = {}
    for coin, ticks in (("BTC", btc), ("ETH", eth), ("SOL", sol)):
        closes = daily_closes(ticks)
        daily_returns[coin] = {d: closes[d] / closes[d - dt.timedelta(days=1)] - 1 for d in closes
                               if d - dt.timedelta(days=1) in closes}
    # BTC's daily returns are 0.1 and 0.1: a constant series has no correlation, and none is made up.
    assert pearson(daily_returns["BTC"], daily_returns["ETH"])[0] is None
    assert stored["daily_BTC_ETH"]["correlation"] is None and stored["daily_BTC_ETH"]["observations"] == 2
    expected, n = pearson(daily_returns["ETH"], daily_returns["SOL"])
    assert stored["daily_ETH_SOL"]["correlation"] == pytest.approx(expected, rel=1e-9)
    assert (stored["daily_ETH_SOL"]["start"], stored["daily_ETH_SOL"]["end"]) == (D1.isoformat(), D3.isoformat())


def test_the_run_is_recorded_and_loading_again_changes_nothing(analytics):
    db, work, env, _ = analytics
    runs = list(db[ANALYTICS_RUNS].find())
    assert len(runs) == 1 and runs[0]["ticks"] == 1440 + 1441 + 720 + 2 * 432
    assert runs[0]["coins"] == ["BTC", "ETH", "SOL"] and runs[0]["master"] == "local[*]"
    before = {d["_id"]: d for d in db[ANALYTICS_DAILY].find()}
    again = subprocess.run([str(ROOT / ".venv" / "bin" / "cryptoapp"), "analytics", "load", "--results",
                            str(work / "results")], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    assert "daily 0 new, 0 changed, 0 removed; correlation 0 new, 0 changed, 0 removed" in again.stdout
    assert {d["_id"]: d for d in db[ANALYTICS_DAILY].find()} == before
    assert db[ANALYTICS_RUNS].count_documents({}) == 1  # the same run, recorded once
