"""End-to-end latency: the worker's simulated source at a steady rate, from a tick's creation to readable in MongoDB."""

from __future__ import annotations

import asyncio
import bisect
import datetime as dt
import math
import statistics
import time

import psutil
from aiokafka import AIOKafkaConsumer, TopicPartition

from bench import harness
from bench.profiling import Profiler
from cryptoapp.prices.models import decode_tick
from cryptoapp.settings import Settings
from tests.support.worker import Worker

POLL_INTERVAL = 0.05  # seconds between readability polls; the measured period is reported beside the numbers


async def _ticks_in_topic(topic: str) -> list[tuple[str, float]]:
    """Every tick the worker published: (tick id, creation time in epoch seconds), read back from Kafka."""
    consumer = AIOKafkaConsumer(bootstrap_servers=harness.KAFKA, group_id=None, enable_auto_commit=False)
    await consumer.start()
    try:
        # The worker creates its topic with the configured partition count (cryptoapp.app.prices_topic).
        partitions = [TopicPartition(topic, p) for p in range(Settings().partitions)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        ticks = []
        async def behind() -> bool:
            return any([await consumer.position(tp) < ends[tp] for tp in partitions])

        while await behind():
            for messages in (await consumer.getmany(timeout_ms=1000, max_records=5000)).values():
                for message in messages:
                    tick = decode_tick(message.value)
                    ticks.append((tick.tick_id, (tick.fetched_at or tick.timestamp).timestamp()))
        return ticks
    finally:
        await consumer.stop()


def readable_times(docs: list[dict], polls: list[tuple[float, int]]) -> dict[str, float]:
    """tick id -> first poll time whose document count included the tick's batch.

    The sink writes one batch at a time (concurrency 1) and stamps every document of a batch with the
    same inserted_at, so batches in inserted_at order are the order in which the count grows.
    """
    batches: dict[dt.datetime, list[str]] = {}
    for doc in docs:
        batches.setdefault(doc["inserted_at"], []).append(doc["_id"])
    # A count can only grow; a running maximum keeps a slow poll that overlapped a write from going back.
    running, top = [], 0
    for _, count in polls:
        top = max(top, count)
        running.append(top)
    seen: dict[str, float] = {}
    cumulative = 0
    for inserted_at in sorted(batches):
        cumulative += len(batches[inserted_at])
        i = bisect.bisect_left(running, cumulative)
        when = polls[i][0] if i < len(polls) else math.inf
        for tick_id in batches[inserted_at]:
            seen[tick_id] = when
    return seen


def run(quick: bool, profiler: Profiler) -> dict:
    coins, interval = (10, 0.1) if quick else (100, 0.1)
    duration, warmup, drain = (5.0, 1.0, 5.0) if quick else (60.0, 5.0, 60.0)
    name = harness.unique_name("latency")
    # Many simulated coins polled every 0.1 s give the target rate through the worker's own timer agent and
    # publish(); unknown CoinGecko ids are accepted as coins (cryptoapp.coins.resolve).
    symbols = " ".join(f"sim{i:03d}" for i in range(coins))
    worker = Worker(name, {"CRYPTO_SOURCE": "simulated", "CRYPTO_INTERVAL": str(interval), "CRYPTO_SYMBOLS": symbols,
                           "CRYPTO_DATADIR": str(harness.ROOT / ".local" / "bench-faust")})
    client = harness.mongo()
    collection = client[name].prices
    polls: list[tuple[float, int]] = []
    try:
        spawned = time.time()
        worker.start(wait_web=False)
        proc = psutil.Process(worker.proc.pid)
        profiler.attach("latency-worker", worker.proc.pid)

        def stored() -> int:
            worker._alive()
            count = collection.count_documents({})
            polls.append((time.time(), count))
            return count

        _, first_seen = harness.wait_until(stored, 90, POLL_INTERVAL)
        window_start = first_seen + warmup
        window_end = window_start + duration
        while time.time() < window_end + drain:
            stored()
            time.sleep(POLL_INTERVAL)
        rss = harness.rss_mb(proc)
    finally:
        profiler.detach("latency-worker")
        worker.stop()
    try:
        docs = list(collection.find({}, {"inserted_at": 1}))
        produced = asyncio.run(_ticks_in_topic(worker.env["CRYPTO_TOPIC"]))
    finally:
        client.drop_database(name)
        asyncio.run(harness.delete_topics_with_prefix(name))
        client.close()
    inserted = {d["_id"]: d["inserted_at"].timestamp() for d in docs}
    seen = readable_times(docs, polls)
    window = [(tick_id, created) for tick_id, created in produced if window_start <= created < window_end]
    readable_ms = [(seen.get(tick_id, math.inf) - created) * 1000 for tick_id, created in window]
    write_ms = [(inserted[tick_id] - created) * 1000 for tick_id, created in window if tick_id in inserted]
    periods = [b[0] - a[0] for a, b in zip(polls, polls[1:])]
    return {
        "target_rate": round(coins / interval), "coins": coins, "poll_interval_s": interval,
        "window_s": duration, "warmup_s": warmup, "drain_s": drain, "startup_s": round(first_seen - spawned, 2),
        "ticks_in_window": len(window), "achieved_rate": round(len(window) / duration, 1),
        "stored_by_deadline": sum(1 for v in readable_ms if not math.isinf(v)),
        "readable_ms": harness.percentiles(readable_ms),
        "write_started_ms": harness.percentiles(write_ms),
        "readability_poll_period_ms": round(statistics.median(periods) * 1000, 1) if periods else None,
        "worker_rss_mb": rss, "log": str(worker.log_path),
    }
