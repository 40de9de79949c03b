"""Requires Kafka and MongoDB: two workers share one pipeline as `make run WORKERS=2` starts them: one price-API call
per interval in all, the same answer for a coin from either worker, each worker's status on the page's collection,
and a kill -9 of one leaves the other storing every tick, none twice."""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import NewTopic
from pymongo import MongoClient

from cryptoapp.prices.models import PriceTick
from cryptoapp.schema import UTC
from testkit.audit import audit, kafka_admin
from testkit.processes import Worker, free_port, wait_for
from tests.support.fake_coingecko import FakeCoinGecko, FakeCoinGeckoServer

pytestmark = pytest.mark.integration
INTERVAL = 2.0
SESSION_TIMEOUT = 10  # seconds Kafka waits for a silent worker before its partitions move (default 60)
# Coins only this test publishes, so their keys spread over the eight partitions.
KEYS = [f"TST{i}" for i in range(12)]


class Publisher(threading.Thread):
    """Ticks of KEYS into the topic, one every `every` s, until stopped; counts what Kafka acknowledged."""

    def __init__(self, bootstrap: str, topic: str, every: float = 0.05):
        super().__init__(daemon=True)
        self.bootstrap, self.topic, self.every = bootstrap, topic, every
        self.stopping = threading.Event()
        self.acked = 0

    def run(self) -> None:
        asyncio.run(self._send())

    async def _send(self) -> None:
        producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, acks="all")
        await producer.start()
        try:
            i = 0
            while not self.stopping.is_set():
                now = dt.datetime.now(UTC).replace(microsecond=dt.datetime.now(UTC).microsecond // 1000 * 1000)
                tick = PriceTick(ticker=KEYS[i % len(KEYS)], timestamp=now, value=100.0 + i, source="scale-test")
                await (await producer.send(self.topic, key=tick.ticker.encode(), value=tick.encode()))
                self.acked += 1
                i += 1
                await asyncio.sleep(self.every)
        finally:
            await producer.stop()


def run_async(coro):
    with ThreadPoolExecutor(1) as pool:  # a loop of its own: pytest's may be running
        return pool.submit(asyncio.run, coro).result()


@pytest.mark.drill  # about 70 s: `make drills` (and CI after `make test`)
def test_two_workers_share_the_load_answer_alike_and_survive_a_kill(services, unique_name):
    client = MongoClient(services["mongo_uri"], tz_aware=True)
    db = client[unique_name]
    env = {"CRYPTO_INTERVAL": str(INTERVAL), "CRYPTO_SESSION_TIMEOUT": str(SESSION_TIMEOUT), "CRYPTO_FORECASTS": "0"}
    with FakeCoinGeckoServer(FakeCoinGecko()) as fake:
        env["COINGECKO_API_URL"] = fake.url
        first, second = (Worker(unique_name, {**env, "WEB_PORT": str(free_port())}) for _ in range(2))
        publisher = Publisher(services["kafka"], f"{unique_name}-prices")
        try:
            first.start()
            second.start()
            # Each worker writes its status; both own partitions once the group settled.
            owners = wait_for(lambda: (docs := list(db.status.find())) and len(docs) == 2 and
                              all(d["partitions"] for d in docs) and docs, 90, "both workers owning partitions")
            assert sorted(p for d in owners for p in d["partitions"]) == list(range(8))
            assert sum(d["leader"] for d in owners) == 1
            # One price-API call per interval in all: only the leader polls.
            before, started = len(fake.calls_to("/simple/price")), time.monotonic()
            wait_for(lambda: time.monotonic() - started > 10, 15, "ten seconds of polling", interval=1)
            calls = len(fake.calls_to("/simple/price")) - before
            assert 0 < calls <= 10 / INTERVAL + 1, calls
            # A coin answers the same from either worker (each routes to the partition its ticks are in).
            answers = wait_for(lambda: (a := [w.get("/prices/BTC/") for w in (first, second)]) and
                               all(s == 200 for s, _ in a) and a, 30, "BTC from both workers")
            assert answers[0] == answers[1] and answers[0][1]["value"] == 67187.3358936566
            listing = first.get("/prices/")[1]
            assert {"BTC", "ETH", "BNB", "USDT", "USDC"} <= set(listing)  # gathered from both workers
            # A kill -9 of one worker: the other takes its partitions after the session timeout and stores every tick.
            publisher.start()
            wait_for(lambda: publisher.acked > 100, 30, "ticks flowing")
            first.stop(9)
            wait_for(lambda: publisher.acked > 600, 60, "ticks published while one worker is gone")
            publisher.stopping.set()
            publisher.join(10)
            topic = f"{unique_name}-prices"
            result = wait_for(lambda: not (r := run_async(audit(services["kafka"], topic, services["mongo_uri"],
                                                                 unique_name))).missing and r,
                              SESSION_TIMEOUT + 90, "every acknowledged tick stored by the surviving worker")
            assert (len(result.invented), result.duplicates) == (0, 0)
            assert second.proc.poll() is None
        finally:
            publisher.stopping.set()
            for worker in (first, second):
                worker.stop()
            client.drop_database(unique_name)
            client.close()


def test_a_topic_made_with_another_partition_count_stops_the_worker_with_one_line(services, unique_name):
    async def make_topic():
        async with kafka_admin(services["kafka"]) as admin:
            await admin.create_topics([NewTopic(f"{unique_name}-prices", num_partitions=2, replication_factor=1)])

    run_async(make_topic())
    worker = Worker(unique_name, {"CRYPTO_SOURCE": "simulated"})
    worker.start(wait_web=False)
    assert worker.proc.wait(60) == 78
    assert (f"the topic {unique_name}-prices has 2 partitions but CRYPTO_PARTITIONS=8: set CRYPTO_PARTITIONS=2"
            in worker.log_text())
