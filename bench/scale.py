"""Scale: the same ticks through one, two and four workers sharing one consumer group, as `make run WORKERS=N`.

The workers start first and settle (each writes its status, the partitions are all owned), then the ticks are
published; the rate is the archive's write rate from the first batch to the last, as for the sink section.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
import urllib.request

import psutil

from bench import harness
from bench.sink_throughput import write_rate
from cryptoapp.schema import UTC
from cryptoapp.settings import load
from testkit.processes import Worker, wait_for

WORKERS = (1, 2, 4)
TARGET = 1.6  # two workers at least 1.6 x one


def one(count: int, ticks: list, time_cap: float) -> dict:
    name = harness.unique_name(f"scale{count}")
    topic = f"{name}-prices"
    env = {"CRYPTO_TOPIC": topic, "MONGO_DB": name, "CRYPTO_SOURCE": "simulated", "CRYPTO_INTERVAL": "1e9",
           "CRYPTO_SYMBOLS": "dogecoin", "CRYPTO_DATADIR": str(harness.ROOT / ".local" / "bench-faust")}
    workers = [Worker(name, env) for _ in range(count)]
    client = harness.mongo()
    db = client[name]
    try:
        asyncio.run(harness.create_topic(topic, load().partitions))
        for worker in workers:
            worker.start(wait_web=False)
        partitions = set(range(load().partitions))
        wait_for(lambda: (docs := list(db.status.find())) and len(docs) == count and
                 {p for d in docs for p in d["partitions"]} == partitions, 180, f"{count} workers owning the partitions",
                 interval=1)
        procs = [psutil.Process(w.proc.pid) for w in workers]
        cpu_before = [harness.cpu_seconds(p) for p in procs]
        asyncio.run(harness.prefill(topic, ticks))
        done = asyncio.run(harness.wait_committed(name, topic, len(ticks) + 1, time_cap, 0.5,
                                                  lambda: [w._alive() for w in workers]))
        cpu = [harness.cpu_seconds(p) - before for p, before in zip(procs, cpu_before)]
        stored = [ticks_stored(w) for w in workers]
        stamps = [d["inserted_at"] for d in db.prices.find({"sensor_id": {"$ne": "DOGE"}}, {"inserted_at": 1})]
    finally:
        for worker in workers:
            worker.stop()
        harness.remove_run(client, name)
    rate, seconds = write_rate(stamps) if stamps else (0.0, 0.0)
    shares = [n / sum(stored) for n in stored] if sum(stored) else []
    return {"workers": count, "stored": len(stamps), "completed": done and len(stamps) == len(ticks),
            "seconds": round(seconds, 1), "ticks_per_s": rate, "logs": [str(w.log_path) for w in workers],
            # Every worker's CPU from the moment the ticks were published until the last was committed, over the ticks.
            "worker_cpu_s": [round(c, 2) for c in cpu], "cpu_us_per_tick": round(sum(cpu) * 1e6 / len(ticks), 1),
            "ticks_stored_by_worker": stored, "share_spread": round(max(shares) * count, 3) if shares else None}


def ticks_stored(worker: Worker) -> int:
    """The ticks this worker's sink stored, from its /metrics (cryptoapp_ticks_stored_total)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{worker.port}/metrics", timeout=10) as resp:
        lines = resp.read().decode().splitlines()
    return int(next((float(line.split()[-1]) for line in lines if line.startswith("cryptoapp_ticks_stored_total ")),
                    0))


def run(quick: bool) -> dict:
    total = 2_000 if quick else 100_000
    counts = (1, 2) if quick else WORKERS
    end = dt.datetime.now(UTC).replace(microsecond=0) - dt.timedelta(minutes=1)
    ticks = harness.simulated_ticks(total, end, dt.timedelta(seconds=1))
    started = time.perf_counter()
    runs = [one(count, ticks, 60.0 if quick else 600.0) for count in counts]
    rates = [r["ticks_per_s"] for r in runs]
    cpu = [r["cpu_us_per_tick"] for r in runs]
    spread = {str(r["workers"]): r["share_spread"] for r in runs if r["workers"] > 1}
    return {"workers": list(counts), "ticks_per_s": rates, "ticks": total,
            "two_over_one": round(rates[1] / rates[0], 2) if rates[0] else None,
            # Issue 21's keys: what holds on any machine, whether or not a worker has a core of its own.
            "cpu_us_per_tick": cpu, "cpu_per_tick_ratio": round(cpu[1] / cpu[0], 3) if cpu[0] else None,
            "share_spread": max((v for v in spread.values() if v is not None), default=None),
            "share_spread_by_workers": spread, "runs": runs, "section_s": round(time.perf_counter() - started, 1)}
