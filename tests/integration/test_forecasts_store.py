"""Requires the running MongoDB server: forecasts and scores stored idempotently, read back by the dashboard, and
`cryptoapp forecast backtest` on stored ticks."""

import datetime as dt
import math
import os
import subprocess
import time

import numpy as np
import pytest

from cryptoapp.forecasts.documents import forecast_documents, score_documents
from cryptoapp.forecasts.online import CoinForecaster
from cryptoapp.storage import PriceStore
from dashboard import data
from testkit.processes import ROOT
from tests.e2e import seeding
from tests.unit.test_forecasts import bars, sine

pytestmark = pytest.mark.integration
UTC = dt.timezone.utc


async def test_forecasts_and_scores_are_stored_once_rewritten_in_place_pruned_and_read_back(db, services):
    forecaster = CoinForecaster("BTC", horizons=(5, 60))
    made = []
    for bar in bars(sine(400)):
        made.extend(forecaster.update(bar).forecasts)
    docs = forecast_documents(made)
    async with PriceStore(services["mongo_uri"], db.name) as store:
        started = time.perf_counter()
        assert await store.forecasts.write_forecasts(docs[:-4]) == len(docs) - 4
        first_write_s = time.perf_counter() - started
        # A restart replays the last bars: their forecasts come again with the new ones.
        assert await store.forecasts.write_forecasts(docs[-40:]) == 4
        assert db.forecasts.count_documents({}) == len(docs)
        started = time.perf_counter()
        await store.forecasts.write_forecast_scores(score_documents(forecaster.score_rows()))
        scores_write_s = time.perf_counter() - started
        for bar in bars(sine(401))[-1:]:
            forecaster.update(bar)
        await store.forecasts.write_forecast_scores(score_documents(forecaster.score_rows()))
        assert sorted(d["_id"] for d in db.forecast_scores.find()) == [
            "BTC_linear_5m", "BTC_linear_60m", "BTC_snarimax_5m", "BTC_snarimax_60m"]
        assert db.forecast_scores.find_one({"_id": "BTC_linear_5m"})["total_points"] == 401 - 5 - 5

        newest = max(f.made_at for f in made)
        forecasts, scores = data.load_forecasts(db, "BTC", since=newest - dt.timedelta(minutes=9))
        assert len(forecasts) == 10 * 4 and forecasts["made_at"].is_monotonic_increasing
        assert str(forecasts["made_at"].dt.tz) == "UTC"
        latest = forecasts[forecasts["made_at"] == newest]
        assert set(zip(latest["model"], latest["horizon_min"])) == {("linear", 5), ("snarimax", 5), ("linear", 60),
                                                                   ("snarimax", 60)}
        assert list(scores["horizon_min"]) == [5, 5, 60, 60] and scores["beats_naive"].dtype == bool
        linear_5 = scores[(scores["model"] == "linear") & (scores["horizon_min"] == 5)]
        assert linear_5["verdict"].item() == "beats naive"

        pruned = await store.forecasts.prune_forecasts(newest - dt.timedelta(minutes=30))
        assert pruned > 0 and db.forecasts.count_documents({}) == len(docs) - pruned
        assert db.forecasts.count_documents({"target_at": {"$lt": newest - dt.timedelta(minutes=30)}}) == 0
    print(f"\nforecast writes on {services['mongo_uri']}: {len(docs) - 4} forecasts {first_write_s * 1000:.0f} ms, "
          f"4 scores {scores_write_s * 1000:.0f} ms")


def backtest(db_name: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "MONGO_DB": db_name, "CRYPTO_SOURCE": "simulated"}
    return subprocess.run([str(ROOT / ".venv" / "bin" / "cryptoapp"), "forecast", "backtest", *args], env=env,
                          cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_the_backtest_replays_stored_ticks_and_prints_model_beside_naive(db):
    now = dt.datetime.now(UTC).replace(second=0, microsecond=0)
    start = now - dt.timedelta(hours=20)
    rng = np.random.default_rng(3)
    ticks = []
    for i in range(20 * 60 * 3):  # a tick every 20 s: three per minute, the last one is the minute's close
        at = start + dt.timedelta(seconds=20 * i)
        value = 87000 * math.exp(0.01 * math.sin(2 * math.pi * i / 270) + rng.normal(0, 0.0005))
        ticks.append(seeding.tick("BTC", at, value, source="simulated", volume_24h=6e10 + i))
    seeding.store(db, ticks)

    result = backtest(db.name, "--symbols", "BTC", "--days", "1", "--horizons", "5,60")
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "BTC: 3,600 ticks (simulated 3,600) -> 1,200 one-minute bars" in out and "[SIMULATED prices" in out
    rows = [line for line in out.splitlines() if line.startswith("BTC ") and "min" in line]
    linear_5 = next(r for r in rows if r.split()[1:4] == ["5", "min", "linear"])
    assert linear_5.endswith("beats naive") and " 1,190 " in linear_5
    assert len(rows) == 4 and all(r.split()[3] in ("linear", "snarimax") for r in rows)


def test_the_backtest_says_in_one_line_what_is_wrong(db):
    empty = backtest(db.name, "--symbols", "BTC", "--days", "1")
    assert empty.returncode == 1
    assert empty.stderr.strip().splitlines()[-1] == (
        "cryptoapp forecast backtest: nothing to replay: no stored ticks of BTC in the last 1 days (run the worker: "
        "make run, or make demo for simulated prices)")
    bad = backtest(db.name, "--symbols", "BTC", "--horizons", "5,x")
    assert bad.returncode == 1 and "Traceback" not in bad.stderr
    assert bad.stderr.strip().splitlines()[-1] == ("cryptoapp forecast backtest: forecast horizons '5,x': give whole "
                                                   "minutes >= 1, comma separated (e.g. 5,60)")
