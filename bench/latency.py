"""End-to-end latency at steady tick rates through the real worker, from a tick's creation to readable in MongoDB."""

from __future__ import annotations

import asyncio
import datetime as dt
import math
import time

import psutil
from aiokafka import AIOKafkaProducer

from bench import harness
from bench.profiling import Profiler
from cryptoapp.coins import resolve_all
from cryptoapp.schema import UTC
from cryptoapp.settings import load
from cryptoapp.sources.simulated import SimulatedSource
from testkit.processes import Worker

# Ten of the built-in coins the simulated source knows (cryptoapp.sources.simulated.LEVELS; it simulates no other),
# none a stablecoin (their walk barely moves) and not DOGE, the worker's own coin in these runs.
COINS = ("bitcoin", "ethereum", "binancecoin", "solana", "ripple", "cardano", "tron", "polkadot", "litecoin",
         "chainlink")


async def produce_steadily(topic: str, coins: tuple[str, ...], rate: float, seconds: float) -> list[tuple[str, float]]:
    """Publishes the simulated source's ticks at `rate` per second for `seconds`, as the worker would publish them.

    Each tick is created (timestamp = fetched_at = now, in ms) just before it is sent; returns (tick id,
    creation time). A producer that falls behind catches up at once, so the rate holds on average.
    """
    source = SimulatedSource(resolve_all(coins))
    producer = AIOKafkaProducer(bootstrap_servers=harness.KAFKA, acks="all", linger_ms=0)
    await producer.start()
    if len(source.coins) != len(coins):
        raise ValueError(f"the simulated source simulates only its built-in coins; {coins} are not all of them")
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


def readable_samples(worker: Worker, since: float) -> list[tuple[float, float]]:
    """(created, readable) Unix times of the ticks the worker stored that were created at or after `since`."""
    status, body = worker.get(f"/latency/?since={since}")
    if status != 200:
        raise RuntimeError(f"/latency/ answered {status}: {body}")
    return [tuple(pair) for pair in body["samples"]]


def measure(rate: float, duration: float, warmup: float, drain: float, profiler: Profiler) -> dict:
    """A bench producer publishes simulated ticks at `rate` per second through the real worker; each tick's creation
    (its fetched_at) against the acknowledgement of the archive write that stored it, from the worker's /latency/."""
    tail = min(5.0, duration / 5)  # the load goes on past the window, so its last ticks see the same load
    name = harness.unique_name("latency")
    topic = f"{name}-prices"
    coins = COINS  # ten coins a step
    # The worker's own source idles (one DOGE tick at start-up); the bench publishes.
    worker = Worker(name, {"CRYPTO_SOURCE": "simulated", "CRYPTO_INTERVAL": "1e9", "CRYPTO_SYMBOLS": "dogecoin",
                           "CRYPTO_TOPIC": topic, "CRYPTO_FORECASTS": "0",
                           "CRYPTO_DATADIR": str(harness.ROOT / ".local" / "bench-faust")})
    client = harness.mongo()
    try:
        asyncio.run(harness.create_topic(topic, load().partitions))
        spawned = time.time()
        worker.start(wait_web=False)
        proc = psutil.Process(worker.proc.pid)
        profiler.attach(f"latency-worker-{rate:g}", worker.proc.pid)
        # The first committed offset (the worker's own start-up tick) shows its sink is consuming. Nothing polls
        # MongoDB meanwhile: on FerretDB every query scans the collection and would slow the writes timed.
        if not asyncio.run(harness.wait_committed(name, topic, 1, 90, 0.2, worker._alive)):
            raise RuntimeError(f"the worker stored nothing within 90 s; see {worker.log_path}")
        consuming = time.time()
        produced = asyncio.run(produce_steadily(topic, coins, rate, warmup + duration + tail))
        drained = asyncio.run(harness.wait_committed(name, topic, len(produced) + 1, drain, 0.2, worker._alive))
        samples = readable_samples(worker, consuming)
        rss = harness.rss_mb(proc)
        profiler.detach(f"latency-worker-{rate:g}")
    finally:
        profiler.detach(f"latency-worker-{rate:g}")
        worker.stop()
        harness.remove_run(client, name)
    window_start = min(created for _, created in produced) + warmup
    window_end = window_start + duration
    window = [created for _, created in produced if window_start <= created < window_end]
    # Each sample is one stored tick (the worker's own start-up tick is older than the window); a tick of the window
    # that no sample has was not stored by the drain limit, and counts as infinite.
    latencies = [(at - created) * 1000 for created, at in samples if window_start <= created < window_end]
    latencies += [math.inf] * max(0, len(window) - len(latencies))
    return {"target_rate": round(rate), "coins": len(coins), "window_s": duration, "warmup_s": warmup,
            "startup_s": round(consuming - spawned, 2), "ticks_in_window": len(window),
            "achieved_rate": round(len(window) / duration, 1), "drained": drained, "drain_limit_s": drain,
            "stored_by_deadline": sum(1 for v in latencies if not math.isinf(v)),
            "readable_ms": harness.percentiles(latencies), "worker_rss_mb": rss, "log": str(worker.log_path)}


def run(quick: bool, profiler: Profiler) -> dict:
    """Creation -> readable at 1,000 and 5,000 ticks/s (quick: 100 and 500, briefly)."""
    rates = (100.0, 500.0) if quick else (1000.0, 5000.0)
    duration, warmup, drain = (5.0, 1.0, 15.0) if quick else (30.0, 5.0, 180.0)
    runs = [measure(rate, duration, warmup, drain, profiler) for rate in rates]
    return {"rate": [r["target_rate"] for r in runs], "p99_ms": [r["readable_ms"]["p99"] for r in runs],
            "p50_ms": [r["readable_ms"]["p50"] for r in runs], "p95_ms": [r["readable_ms"]["p95"] for r in runs],
            "runs": runs,
            "how": "readable = the acknowledgement of the archive write that stored the tick, recorded per batch by the "
                   "sink (cryptoapp/metrics.py, served at /latency/); created = the tick's fetched_at, set by the bench "
                   "producer just before sending it. A tick not stored within the drain limit counts as infinite."}
