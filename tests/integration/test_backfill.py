"""Requires Kafka and MongoDB: the real worker and `cryptoapp backfill` fill gaps from a fake CoinGecko's market_chart/range."""

import datetime as dt
import math
import os
import subprocess
import time
from dataclasses import dataclass, field
from typing import Optional

import pytest
from aiohttp import web
from pymongo import MongoClient

from cryptoapp.prices.models import PriceTick
from cryptoapp.storage import PriceStore
from cryptoapp.storage.ticks import to_document
from testkit.processes import ROOT, Worker, wait_for
from tests.support.fake_coingecko import Call, FakeCoinGecko, FakeCoinGeckoServer, reference

pytestmark = pytest.mark.integration
UTC = dt.timezone.utc
HOUR = 3600
STEP = 300  # CoinGecko's ~5-minute points for spans up to a day
BASE = {"bitcoin": 67000.0, "ethereum": 3400.0}


def price(coin_id: str, t: int) -> float:
    return round(BASE[coin_id] * (1 + 0.01 * math.sin(t / HOUR)), 6)


def chart(coin_id: str, from_s: int, to_s: int) -> dict:
    """A market_chart/range answer in CoinGecko's shape: 5-minute points up to a day's span, hourly beyond."""
    step = STEP if to_s - from_s <= 86400 else HOUR
    times = range(math.ceil(from_s / step) * step, to_s + 1, step)
    return {"prices": [[t * 1000, price(coin_id, t)] for t in times],
            "market_caps": [[t * 1000, price(coin_id, t) * 19.9e6] for t in times],
            "total_volumes": [[t * 1000, 3.0e10 + t % 1000] for t in times]}


def points_between(low: float, high: float) -> int:
    """How many 5-minute points lie strictly between two times (s)."""
    return max(0, math.ceil(high / STEP) - math.floor(low / STEP) - 1)


@dataclass
class HistoryFake(FakeCoinGecko):
    """The fake CoinGecko with a history, a clock for live answers and chart-only rate limits."""

    lag: Optional[float] = None  # set: live answers are stamped now - lag, and move on every call
    chart_faults: int = 0  # the next market_chart/range calls answered 429
    on_chart: Optional[object] = None  # callable(coin_id), run before a chart answer
    log: list = field(default_factory=list)  # (monotonic time, "simple" | "chart") of every call

    def __post_init__(self):
        self.chart_points = chart

    async def simple_price(self, request: web.Request) -> web.Response:
        self.log.append((time.monotonic(), "simple"))
        if self.lag is not None:
            t = int(time.time() - self.lag)
            for coin_id, entry in self.prices.items():
                entry.update(last_updated_at=t, usd=price(coin_id, t) if coin_id in BASE else entry["usd"])
        return await super().simple_price(request)

    async def market_chart_range(self, request: web.Request) -> web.Response:
        self.log.append((time.monotonic(), "chart"))
        if self.chart_faults:
            self.chart_faults -= 1
            self.calls.append(Call(request.path, dict(request.query), dict(request.headers)))
            return web.json_response(reference("coingecko-429.json"), status=429)
        if self.on_chart is not None:
            self.on_chart(request.match_info["coin_id"])
        return await super().market_chart_range(request)

    def chart_calls(self, coin_id: str = "") -> list[tuple[int, int]]:
        return [(int(c.params["from"]), int(c.params["to"])) for c in self.calls_to("/market_chart/range")
                if f"/coins/{coin_id}" in c.path]


@pytest.fixture
def mongo(services):
    client = MongoClient(os.environ.get("MONGO_URI", "mongodb://localhost:27017"), tz_aware=True)
    yield client
    client.close()


@pytest.fixture
def db(mongo, unique_name):
    yield mongo[unique_name]
    mongo.drop_database(unique_name)


def seed(db, ticker: str, times, granularity: Optional[str]) -> None:
    source = "coingecko-backfill" if granularity else "coingecko"
    now = dt.datetime.now(UTC)
    db.prices.insert_many([to_document(PriceTick(
        ticker=ticker, timestamp=dt.datetime.fromtimestamp(t, UTC), value=1000.0, source=source,
        granularity=granularity), inserted_at=now) for t in times])


def backfilled(db, ticker: str) -> list:
    return list(db.prices.find({"sensor_id": ticker, "source": "coingecko-backfill", "granularity": "5m"})
                .sort("timestamp", 1))


def run_command(worker: Worker, *args: str) -> str:
    result = subprocess.run([str(ROOT / ".venv" / "bin" / "cryptoapp"), "backfill", *args], env=worker.env,
                            cwd=ROOT, capture_output=True, text=True, timeout=90)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def log_since_start(worker: Worker) -> str:
    return worker.log_text().rsplit(f"===== start {worker.starts} =====", 1)[-1]


def history_worker(name: str, fake: FakeCoinGecko, *, interval: int, rpm: int, hours: int,
                   symbols: str = "bitcoin") -> Worker:
    """A worker polling `fake` every `interval` s within `rpm` calls a minute, backfilling `hours` at start-up."""
    return Worker(name, {"COINGECKO_API_URL": fake.url, "CRYPTO_INTERVAL": str(interval),
                         "CRYPTO_REQUESTS_PER_MINUTE": str(rpm), "CRYPTO_BACKFILL_HOURS": str(hours),
                         "CRYPTO_SYMBOLS": symbols})


def wait_for_backfill(worker: Worker, what: str) -> None:
    wait_for(lambda: "backfill done" in log_since_start(worker), 60, what)


async def test_a_backfilled_tick_never_overwrites_a_stored_one_and_a_live_one_replaces_it(db):
    at = [dt.datetime(2025, 11, 21, 10, tzinfo=UTC) + dt.timedelta(minutes=5 * i) for i in range(90)]

    def tick(i: int, live: bool) -> PriceTick:
        return PriceTick(ticker="BTC", timestamp=at[i], value=81450.5 if live else 80000.0 + i,
                         source="coingecko" if live else "coingecko-backfill", granularity=None if live else "5m")

    async with PriceStore(os.environ.get("MONGO_URI", "mongodb://localhost:27017"), db.name) as store:
        await store.ticks.upsert([tick(0, live=True)])
        await store.ticks.upsert([tick(i, live=False) for i in range(90)])
        first = db.prices.find_one({"_id": tick(0, True).tick_id})
        assert (first["value"], first["source"], "granularity" in first) == (81450.5, "coingecko", False)
        await store.ticks.upsert([tick(1, live=True)])  # a live tick at a backfilled time: live wins, label and all
        second = db.prices.find_one({"_id": tick(1, True).tick_id})
        assert (second["value"], second["source"], "granularity" in second) == (81450.5, "coingecko", False)
        # The same backfilled ticks again (a second run, a replay): nothing changes. Fewer than 100, as
        # FerretDB 1.24 hangs a database on one command updating 100 stored documents.
        before = list(db.prices.find().sort("_id", 1))
        await store.ticks.upsert([tick(i, live=False) for i in range(90)])
        assert list(db.prices.find().sort("_id", 1)) == before
        assert db.prices.count_documents({"granularity": "5m"}) == 88


def test_start_up_fills_gaps_with_provenance_and_a_second_run_adds_nothing(db, unique_name):
    hour = int(time.time()) // HOUR * HOUR
    # BTC: hourly history filled earlier, with a 3 h hole; ETH: live ticks every minute until 6 h ago.
    # A stretch shorter than two hourly steps next to hourly history is its spacing, not a gap.
    btc_seeds = [hour - h * HOUR for h in range(28, 1, -1) if h not in (12, 11)]
    seed(db, "BTC", btc_seeds, "1h")
    seed(db, "ETH", range(hour - 33 * HOUR, hour - 6 * HOUR + 1, 60), None)
    race_time = hour - 3 * HOUR
    race_doc = to_document(PriceTick(ticker="ETH", timestamp=dt.datetime.fromtimestamp(race_time, UTC),
                                     value=4242.0, source="coingecko"), inserted_at=dt.datetime(2025, 1, 1, tzinfo=UTC))

    def live_tick_lands_meanwhile(coin_id):
        # The live poll stores a tick at a time the backfill already counted as missing.
        if coin_id == "ethereum" and not db.prices.find_one({"_id": race_doc["_id"]}):
            db.prices.insert_one(dict(race_doc))

    with FakeCoinGeckoServer(HistoryFake(on_chart=live_tick_lands_meanwhile)) as fake:
        w = history_worker(unique_name, fake, interval=2, rpm=120, hours=32, symbols="bitcoin ethereum")
        try:
            w.start()
            wait_for_backfill(w, "the start-up backfill to finish")
            btc_calls, eth_calls = fake.chart_calls("bitcoin"), fake.chart_calls("ethereum")
            end = btc_calls[-1][1]  # the window's end, when the run began
            assert btc_calls == [(end - 32 * HOUR, hour - 10 * HOUR), (hour - 2 * HOUR, end)]  # head + hole, tail
            assert eth_calls == [(hour - 6 * HOUR, end)]
            expected_btc = (points_between(end - 32 * HOUR, btc_seeds[0])
                            + points_between(hour - 13 * HOUR, hour - 10 * HOUR) + points_between(hour - 2 * HOUR, end))
            expected_eth = points_between(hour - 6 * HOUR, end) - 1  # less the live tick that landed meanwhile
            wait_for(lambda: len(backfilled(db, "BTC")) == expected_btc and len(backfilled(db, "ETH")) == expected_eth,
                     30, f"{expected_btc} BTC and {expected_eth} ETH backfilled documents")

            eth = backfilled(db, "ETH")
            times = [d["timestamp"].timestamp() for d in eth]
            assert max(b - a for a, b in zip(times, times[1:])) == 2 * STEP  # only the live tick's place is missing
            doc = eth[0]
            t = int(doc["timestamp"].timestamp())
            assert abs(doc.pop("inserted_at") - dt.datetime.now(UTC)) < dt.timedelta(minutes=2)
            assert doc == {"_id": f"ETH_{dt.datetime.fromtimestamp(t, UTC):%Y-%m-%dT%H:%M:%SZ}",
                           "timestamp": dt.datetime.fromtimestamp(t, UTC), "value": price("ethereum", t),
                           "sensor_id": "ETH", "bid_price": None, "ask_price": None, "bid_size": None, "ask_size": None,
                           "volume_24h": 3.0e10 + t % 1000, "change_24h_pct": None,
                           "market_cap": price("ethereum", t) * 19.9e6, "currency": "usd",
                           "source": "coingecko-backfill", "granularity": "5m"}
            assert db.prices.find_one({"_id": race_doc["_id"]}) == race_doc  # the live tick was not overwritten
            assert db.prices.count_documents({"sensor_id": "BTC", "granularity": "1h"}) == len(btc_seeds)

            # On demand, a little further back: only the new head of each coin is asked for. 35 h, not 34:
            # the ETH seeds start 33 h before the hour, and a head shorter than 10 minutes is no gap.
            stored_before = db.prices.count_documents({})
            out = run_command(w, "--hours", "35", "--symbols", "bitcoin,ETH")
            (btc_head,), (eth_head,) = fake.chart_calls("bitcoin")[2:], fake.chart_calls("ethereum")[1:]
            first_filled = (end - 32 * HOUR) // STEP * STEP + STEP
            assert btc_head[1] == first_filled and eth_head[1] == hour - 33 * HOUR
            added = points_between(*btc_head) + points_between(*eth_head)
            assert f"all {added} ticks stored" in out, out
            assert db.prices.count_documents({}) == stored_before + added

            calls, stored = len(fake.calls_to("/market_chart/range")), db.prices.count_documents({})
            out = run_command(w, "--hours", "35", "--symbols", "bitcoin,ETH")
            assert "backfill BTC: no gaps" in out and "backfill ETH: no gaps" in out, out
            assert len(fake.calls_to("/market_chart/range")) == calls and db.prices.count_documents({}) == stored
        finally:
            w.stop()


def test_backfill_keeps_to_its_share_of_the_budget_while_live_polls_go_on(db, unique_name):
    rpm, interval = 30, 3
    share = rpm - math.ceil(60 / interval) - 1  # 9 calls a minute: one every 6.7 s
    with FakeCoinGeckoServer(HistoryFake()) as fake:
        w = history_worker(unique_name, fake, interval=interval, rpm=rpm, hours=72)
        try:
            w.start()
            wait_for_backfill(w, "the backfill of three days")
        finally:
            w.stop()
    charts = [t for t, kind in fake.log if kind == "chart"]
    polls = [t for t, kind in fake.log if kind == "simple"]
    assert len(charts) == 3  # 72 h in calls of a day
    assert min(b - a for a, b in zip(charts, charts[1:])) >= 60 / share * 0.95
    during = [t for t in polls if charts[0] - interval <= t <= charts[-1] + interval]
    # A poll may wait for the budget's spacing (60 / rpm s) behind a backfill call, never longer.
    assert len(during) >= 4 and max(b - a for a, b in zip(during, during[1:])) <= interval + 60 / rpm + 0.5
    every = sorted(charts + polls)
    assert max(sum(1 for t in every if start <= t < start + 60) for start in every) <= rpm


def test_gap_left_by_a_stopped_worker_is_filled_after_restart(db, unique_name):
    # CoinGecko's clock runs an hour behind while the worker is up, then jumps to now: as if the
    # worker had been stopped for an hour. A rate limit greets the first history call.
    with FakeCoinGeckoServer(HistoryFake(lag=HOUR)) as fake:
        w = history_worker(unique_name, fake, interval=2, rpm=120, hours=0)
        try:
            w.start()
            wait_for(lambda: db.prices.count_documents({"sensor_id": "BTC"}) >= 3, 30, "three live BTC ticks")
            assert w.stop() == 0
            assert "no backfill at start-up (CRYPTO_BACKFILL_HOURS=0)" in w.log_text()
            assert fake.chart_calls() == []
            last_before = db.prices.find_one({"sensor_id": "BTC"}, sort=[("timestamp", -1)])["timestamp"]

            fake.lag, fake.chart_faults = 0, 1
            w.env["CRYPTO_BACKFILL_HOURS"] = "2"
            w.start()
            wait_for_backfill(w, "the backfill after the restart")
            (first_call, second_call) = fake.chart_calls("bitcoin")
            assert first_call == second_call  # after the 429 the same span is asked for again
            end = second_call[1]
            wait_for(lambda: db.prices.count_documents({"sensor_id": "BTC", "timestamp": {"$gt": last_before},
                                                        "source": "coingecko"}) >= 1, 30, "a live tick after the restart")
            # "backfill done" means published; the sink stores the ticks a moment later.
            expected = points_between(last_before.timestamp(), end)
            wait_for(lambda: len([d for d in backfilled(db, "BTC")
                                  if last_before.timestamp() < d["timestamp"].timestamp() < end]) >= expected,
                     30, f"{expected} backfilled ticks stored for the downtime")
        finally:
            w.stop()
    filled = [d["timestamp"].timestamp() for d in backfilled(db, "BTC")]
    assert len(filled) >= points_between(last_before.timestamp(), end) >= 11
    downtime = [t for t in filled if last_before.timestamp() < t < end]
    assert len(downtime) == points_between(last_before.timestamp(), end)
    assert downtime[0] - last_before.timestamp() <= STEP and end - downtime[-1] <= STEP
    warnings = [line for line in log_since_start(w).splitlines() if "WARNING" in line and "backfill" in line]
    assert len(warnings) == 1 and "HTTP 429" in warnings[0], warnings
