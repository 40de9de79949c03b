"""Requires Kafka and MongoDB: the real worker keeps candles equal to what `cryptoapp candles verify` recomputes from
the archive, through live ticks, late backfilled ticks, a redelivered batch, a kill -9 in the middle of a bar, and
a coin that goes quiet (its bar closes by the clock, with no later tick: faust-streaming issue 250's trap)."""

from __future__ import annotations

import datetime as dt
import os
import subprocess

import pytest

from cryptoapp.candles.rings import BarRing
from cryptoapp.prices.models import PriceTick
from cryptoapp.schema import COINGECKO, COINGECKO_BACKFILL, UTC, candle_id
from dashboard import data
from testkit.audit import in_thread, publish
from testkit.processes import ROOT, Worker, wait_for

pytestmark = pytest.mark.integration


def tick(ticker: str, at: dt.datetime, value: float, source: str = COINGECKO, **extra) -> PriceTick:
    at = at.replace(microsecond=at.microsecond // 1000 * 1000)
    return PriceTick(ticker=ticker, timestamp=at, value=value, source=source, volume_24h=1e9 + value, **extra)


def verify(name: str, hours: float = 6) -> subprocess.CompletedProcess:
    env = {**os.environ, "MONGO_DB": name, "CRYPTO_APP_ID": name, "CRYPTO_TOPIC": f"{name}-prices"}
    return subprocess.run([str(ROOT / ".venv" / "bin" / "cryptoapp"), "candles", "verify", "--hours", str(hours)],
                          env=env, capture_output=True, text=True, timeout=120, cwd=ROOT)


def test_candles_match_the_archive_through_late_ticks_redelivery_a_kill_and_a_quiet_coin(services, db, unique_name):
    # BTC comes from the simulated source every 2 s; ETH and BNB only from what this test publishes.
    worker = Worker(unique_name, {"CRYPTO_SOURCE": "simulated", "CRYPTO_SYMBOLS": "BTC", "CRYPTO_INTERVAL": "2"})
    topic = f"{unique_name}-prices"
    now = dt.datetime.now(UTC)
    hour = now.replace(minute=0, second=0, microsecond=0) - dt.timedelta(hours=2)
    live = [tick("ETH", hour + dt.timedelta(seconds=37 * i), 2900 + (i % 17) - (i % 5) * 3.5) for i in range(200)]
    # Backfill comes late and out of order: points inside the live stretch's holes, and one at the time of a live
    # tick, which must not replace it (the archive keeps the live one: insert-if-absent).
    backfill = [tick("ETH", hour - dt.timedelta(minutes=5 * i), 2800 + i, COINGECKO_BACKFILL, granularity="5m")
                for i in range(1, 13)]
    clash = tick("ETH", live[40].timestamp, 1.0, COINGECKO_BACKFILL, granularity="5m")
    try:
        worker.start()
        in_thread(publish(services["kafka"], topic, live))
        in_thread(publish(services["kafka"], topic, backfill[::-1] + [clash]))
        in_thread(publish(services["kafka"], topic, live[50:120]))  # the same messages again: a redelivered batch
        eth_hour = candle_id("ETH", "1h", hour)
        in_hour = len([t for t in live if t.timestamp < hour + dt.timedelta(hours=1)])
        # Closed as soon as it came (it ended long ago), then corrected by each later batch: every tick once.
        wait_for(lambda: (db.candles.find_one({"_id": eth_hour}) or {}).get("ticks") == in_hour, 60,
                 f"the closed ETH hour in crypto.candles with its {in_hour} ticks")
        # A bar in progress when the worker is killed goes on after the restart from its restored state.
        minute = dt.datetime.now(UTC).replace(second=0, microsecond=0)
        if (dt.datetime.now(UTC) - minute).total_seconds() > 45:
            minute += dt.timedelta(minutes=1)
            wait_for(lambda: dt.datetime.now(UTC) >= minute, 20, "the next minute")
        first = [tick("BNB", minute + dt.timedelta(seconds=s), 850.0 + s) for s in (1, 2, 3)]
        in_thread(publish(services["kafka"], topic, first))
        wait_for(lambda: (d := data._view(db, "BNB", "1m")) and BarRing.from_document(d).rows(minute),
                 30, "BNB's open minute in the views")
        worker.stop(9)
        worker.start()
        later = [tick("BNB", minute + dt.timedelta(seconds=s), 840.0 + s) for s in (10, 20)]
        in_thread(publish(services["kafka"], topic, later + first[:1]))  # and the first tick once more
        # BNB is then quiet: its minute must close by the clock alone, with every tick counted once.
        bnb_minute = candle_id("BNB", "1m", minute)
        stored = wait_for(lambda: db.candles.find_one({"_id": bnb_minute}), 100, "BNB's minute closed by the clock")
        assert (stored["open"], stored["high"], stored["low"], stored["close"], stored["ticks"]) == \
            (851.0, 860.0, 850.0, 860.0, 5)
        wait_for(lambda: db.candles.find_one({"_id": candle_id("BTC", "1m", minute)}), 60, "BTC's minute closed")
        runs = []
        try:
            wait_for(lambda: runs.append(verify(unique_name)) or runs[-1].returncode == 0, 90,
                     "`cryptoapp candles verify` to find no mismatch")
        except AssertionError as exc:
            raise AssertionError(f"{exc}; it said:\n{runs[-1].stdout[-2000:]}{runs[-1].stderr[-500:]}") from None
        result = runs[-1]
        checked = int(result.stdout.split()[0])
        assert checked > 40, result.stdout
    finally:
        worker.stop()
    # The serving view holds the same hour as crypto.candles.
    ring = BarRing.from_document(data._view(db, "ETH", "1h"))
    row = next(r for r in ring.rows() if r["timestamp"] == hour)
    stored = db.candles.find_one({"_id": eth_hour})
    assert (row["open"], row["high"], row["low"], row["close"], row["ticks"]) == \
        (stored["open"], stored["high"], stored["low"], stored["close"], stored["ticks"])
    assert "Traceback" not in worker.log_text()
