"""End-to-end latency at a steady tick rate through the real worker, from a tick's creation to readable in MongoDB."""

from __future__ import annotations

import asyncio
import datetime as dt
import math
import time

import psutil
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from bench import harness
from bench.profiling import Profiler
from cryptoapp.coins import resolve_all
from cryptoapp.prices.models import decode_tick
from cryptoapp.schema import UTC
from cryptoapp.settings import load
from cryptoapp.sources.simulated import SimulatedSource
from cryptoapp.testing.processes import Worker


async def _ticks_in_topic(topic: str) -> list[tuple[str, float]]:
    """Every tick the worker published: (tick id, creation time in epoch seconds), read back from Kafka."""
    consumer = AIOKafkaConsumer(bootstrap_servers=harness.KAFKA, group_id=None, enable_auto_commit=False)
    await consumer.start()
    try:
        # The worker creates its topic with the configured partition count (cryptoapp.app.prices_topic).
        partitions = [TopicPartition(topic, p) for p in range(load().partitions)]
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


def readable_bounds(docs: list[dict], stopped_at: float) -> dict[str, tuple[float, float]]:
    """tick id -> (write started, readable by), in epoch seconds, from the sink's inserted_at stamps alone.

    The sink writes one batch at a time (concurrency 1) and stamps a batch's documents with one
    inserted_at just before writing it, so a batch was acknowledged, hence readable, before the
    next batch's stamp; the last batch before the worker stopped is bounded by the stop.
    """
    batches: dict[float, list[str]] = {}
    for doc in docs:
        batches.setdefault(doc["inserted_at"].timestamp(), []).append(doc["_id"])
    stamps = sorted(batches)
    bounds = {}
    for stamp, next_stamp in zip(stamps, [*stamps[1:], stopped_at]):
        for tick_id in batches[stamp]:
            bounds[tick_id] = (stamp, next_stamp)
    return bounds


async def produce_steadily(topic: str, coins: tuple[str, ...], rate: float, seconds: float) -> list[tuple[str, float]]:
    """Publishes the simulated source's ticks at `rate` per second for `seconds`, as the worker would publish them.

    Each tick is created (timestamp = fetched_at = now, in ms) just before it is sent; returns (tick id,
    creation time). A producer that falls behind catches up at once, so the rate holds on average.
    """
    source = SimulatedSource(resolve_all(coins))
    producer = AIOKafkaProducer(bootstrap_servers=harness.KAFKA, acks="all", linger_ms=0)
    await producer.start()
    produced, pending = [], []
    step = len(coins) / rate
    next_at = time.monotonic()
    end = next_at + seconds
    last = None
    try:
        while next_at < end:
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
            now = dt.datetime.now(UTC)
            now = now.replace(microsecond=now.microsecond // 1000 * 1000)
            if last is not None and now <= last:
                now = last + dt.timedelta(milliseconds=1)  # one source time per step keeps every _id distinct
            last = now
            for tick in source.step(now):
                pending.append(await producer.send(topic, key=tick.ticker.encode(), value=tick.encode()))
                produced.append((tick.tick_id, now.timestamp()))
            next_at += step
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return produced


def run(quick: bool, profiler: Profiler, source: str = "producer") -> dict:
    """`source` "producer": a bench process publishes at the target rate; "simulated": the worker's own timer does."""
    rate = 100.0 if quick else 1000.0
    duration, warmup, drain = (5.0, 1.0, 5.0) if quick else (60.0, 5.0, 60.0)
    tail = 1.0 if quick else 5.0  # the load goes on past the window, so its last ticks see the same load
    name = harness.unique_name("latency")
    topic = f"{name}-prices"
    interval = 0.1
    if source == "simulated":
        # Many simulated coins polled every 0.1 s aim at the rate through the worker's own timer agent and
        # publish(); unknown CoinGecko ids are accepted as coins (cryptoapp.coins.resolve).
        coins = tuple(f"sim{i:03d}" for i in range(round(rate * interval)))
        env = {"CRYPTO_SOURCE": "simulated", "CRYPTO_INTERVAL": str(interval), "CRYPTO_SYMBOLS": " ".join(coins)}
    else:
        # The worker's own source idles (one DOGE tick at start-up); ten coins a step, a step every 10 ms.
        coins = tuple(f"sim{i:03d}" for i in range(10))
        env = {"CRYPTO_SOURCE": "simulated", "CRYPTO_INTERVAL": "1e9", "CRYPTO_SYMBOLS": "dogecoin"}
    worker = Worker(name, {**env, "CRYPTO_TOPIC": topic,
                           "CRYPTO_DATADIR": str(harness.ROOT / ".local" / "bench-faust")})
    client = harness.mongo()
    collection = client[name].prices
    try:
        asyncio.run(harness.create_topic(topic, load().partitions))
        spawned = time.time()
        # Nothing polls MongoDB while ticks flow: on FerretDB every query scans the collection and would
        # slow the very writes being timed. Kafka's committed offsets say when the sink is done.
        worker.start(wait_web=False)
        proc = psutil.Process(worker.proc.pid)
        profiler.attach("latency-worker", worker.proc.pid)
        # The first committed offset (the worker's own start-up tick) shows its sink is consuming.
        if not asyncio.run(harness.wait_committed(name, topic, 1, 90, 0.2, worker._alive)):
            raise RuntimeError(f"the worker stored nothing within 90 s; see {worker.log_path}")
        consuming = time.time()
        if source == "simulated":
            time.sleep(warmup + duration + tail)
            produced = asyncio.run(_ticks_in_topic(topic))
        else:
            produced = asyncio.run(produce_steadily(topic, coins, rate, warmup + duration + tail))
        asyncio.run(harness.wait_committed(name, topic, len(produced), drain, 0.2, worker._alive))
        rss = harness.rss_mb(proc)
        profiler.detach("latency-worker")
        worker.stop()
        stopped_at = time.time()
        docs = list(collection.find({}, {"inserted_at": 1}))
    finally:
        profiler.detach("latency-worker")
        worker.stop()
        client.drop_database(name)
        asyncio.run(harness.delete_topics_with_prefix(name))
        client.close()
    bounds = readable_bounds(docs, stopped_at)
    ours = [(tick_id, created) for tick_id, created in produced if not tick_id.startswith("DOGE_")]
    window_start = min(created for _, created in ours) + warmup
    window_end = window_start + duration
    window = [(tick_id, created) for tick_id, created in ours if window_start <= created < window_end]
    readable_ms = [(bounds[t][1] - created) * 1000 if t in bounds else math.inf for t, created in window]
    write_ms = [(bounds[t][0] - created) * 1000 for t, created in window if t in bounds]
    stamps = sorted({b[0] for b in bounds.values()})
    gaps = [b - a for a, b in zip(stamps, stamps[1:])]
    return {
        "source": source, "target_rate": round(rate), "coins": len(coins), "window_s": duration, "warmup_s": warmup,
        "startup_s": round(consuming - spawned, 2), "ticks_in_window": len(window),
        "achieved_rate": round(len(window) / duration, 1),
        "stored_by_deadline": sum(1 for v in readable_ms if not math.isinf(v)), "drain_limit_s": drain,
        "readable_ms": harness.percentiles(readable_ms),
        "write_started_ms": harness.percentiles(write_ms),
        "batch_interval_ms": harness.percentiles([g * 1000 for g in gaps], (50, 95)),
        "how": "readable by = the next batch's inserted_at (the sink stamps it only after the previous write was "
               "acknowledged): an upper bound; write started = the tick's own inserted_at: a lower bound",
        "worker_rss_mb": rss, "log": str(worker.log_path),
    }
