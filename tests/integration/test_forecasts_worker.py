"""Requires Kafka and MongoDB: the real worker learns forecasts from the candles' closed minutes, and a kill -9, a
restart and a closed bar sent again score nothing twice: the scores go on exactly where the same bars replayed
offline in one go end."""

from __future__ import annotations

import asyncio
import datetime as dt
from concurrent.futures import ThreadPoolExecutor

import pytest

from cryptoapp.forecasts.backtest import replay
from cryptoapp.forecasts.features import Bar
from cryptoapp.schema import UTC, candle_id, forecast_id, forecast_score_id
from testkit.audit import committed_offsets, in_thread, publish, records
from testkit.processes import Worker, wait_for
from tests.integration.test_candles import tick
from tests.unit.test_forecasts import sine

pytestmark = pytest.mark.integration

FIRST, TOTAL = 180, 300  # minutes published before the kill, and in all


def all_committed(bootstrap: str, group: str, topic: str) -> bool:
    """Whether consumer group `group` has committed every message `topic` holds."""
    with ThreadPoolExecutor(1) as pool:
        committed = pool.submit(asyncio.run, committed_offsets(bootstrap, group, topic)).result()
    held = len(records(bootstrap, topic))
    return held > 0 and sum(committed.values()) == held


def score(db, model: str, horizon: int) -> dict:
    return db.forecast_scores.find_one({"_id": forecast_score_id("BTC", model, horizon)}) or {}


def test_forecasts_survive_a_kill_and_a_resent_bar_without_scoring_anything_twice(services, db, unique_name):
    # The simulated source polls once at start (DOGE, now) and then never: BTC comes only from this test, one tick
    # a minute, in minutes that ended over CRYPTO_INTERVAL's grace (at most 10 min) ago, so each closes at once.
    worker = Worker(unique_name, {"CRYPTO_SOURCE": "simulated", "CRYPTO_INTERVAL": "1e9", "CRYPTO_SYMBOLS": "dogecoin"})
    topic = f"{unique_name}-prices"
    first_minute = dt.datetime.now(UTC).replace(second=0, microsecond=0) - dt.timedelta(minutes=TOTAL + 20)
    closes = sine(TOTAL)
    minutes = [first_minute + dt.timedelta(minutes=i) for i in range(TOTAL)]
    ticks = [tick("BTC", at + dt.timedelta(seconds=30), float(c)) for at, c in zip(minutes, closes)]
    # What the stream must arrive at: the same bars, once each, through the same code in one process.
    expected = {(r.model, r.horizon_min): r for r in replay([Bar("BTC", at, float(c), t.volume_24h)
                                                             for at, c, t in zip(minutes, closes, ticks)])}
    points = {key: row.total_points for key, row in expected.items()}
    assert points[("linear", 5)] == TOTAL - 5 - 5 and points[("snarimax", 60)] == TOTAL - 5 - 60
    try:
        worker.start()
        in_thread(publish(services["kafka"], topic, ticks[:FIRST]))
        wait_for(lambda: score(db, "snarimax", 60).get("total_points") == FIRST - 5 - 60, 90,
                 f"the scores of the first {FIRST} minutes")
        # Once their offsets are committed, Kafka never delivers these bars again: only the saved state knows them.
        wait_for(lambda: all_committed(services["kafka"], unique_name, f"{unique_name}-forecast-minutes"), 30,
                 "the forecasting agent's offsets committed")
        worker.stop(9)
        worker.start()
        # A late tick corrects a minute scored long ago: the candles send its closed bar again.
        late = tick("BTC", minutes[100] + dt.timedelta(seconds=45), float(closes[100]) * 1.01)
        in_thread(publish(services["kafka"], topic, [late, *ticks[FIRST:]]))
        wait_for(lambda: all(score(db, m, h).get("total_points") == n for (m, h), n in points.items()), 90,
                 f"the scores of all {TOTAL} minutes")
        assert (db.candles.find_one({"_id": candle_id("BTC", "1m", minutes[100])}) or {}).get("ticks") == 2
        newest = db.forecasts.find_one({"_id": forecast_id("BTC", "linear", 5, minutes[-1])})
    finally:
        assert worker.stop() == 0  # SIGTERM with the forecasts fed: a clean stop
    for (model, horizon), row in expected.items():
        stored = score(db, model, horizon)
        assert stored["total_points"] == row.total_points and stored["points"] == row.points
        assert stored["total_mae"] == pytest.approx(row.total_mae, rel=1e-9)
        assert stored["mae"] == pytest.approx(row.mae, rel=1e-9) and stored["verdict"] == row.verdict
    assert expected[("linear", 5)].beats_naive  # the sine has a pattern: the stream found it as the replay did
    assert newest is not None and newest["base_close"] == pytest.approx(float(closes[-1]))
    log = worker.log_text()
    assert f"forecasts of BTC: state read back: {FIRST:,} bars taken" in log
    assert "Traceback" not in log and "start fresh" not in log
