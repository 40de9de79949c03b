"""Scale: the same ticks through one, two and four workers sharing one consumer group, as `make run WORKERS=N`.

The workers start first and settle (each writes its status, the partitions are all owned), then the ticks are
published; the rate is the archive's write rate from the first batch to the last, as for the sink section.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time

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
        asyncio.run(harness.prefill(topic, ticks))
        done = asyncio.run(harness.wait_committed(name, topic, len(ticks) + 1, time_cap, 0.5,
                                                  lambda: [w._alive() for w in workers]))
        stamps = [d["inserted_at"] for d in db.prices.find({"sensor_id": {"$ne": "DOGE"}}, {"inserted_at": 1})]
    finally:
        for worker in workers:
            worker.stop()
        harness.remove_run(client, name)
    rate, seconds = write_rate(stamps) if stamps else (0.0, 0.0)
    return {"workers": count, "stored": len(stamps), "completed": done and len(stamps) == len(ticks),
            "seconds": round(seconds, 1), "ticks_per_s": rate, "logs": [str(w.log_path) for w in workers]}


def run(quick: bool) -> dict:
    total = 2_000 if quick else 100_000
    counts = (1, 2) if quick else WORKERS
    end = dt.datetime.now(UTC).replace(microsecond=0) - dt.timedelta(minutes=1)
    ticks = harness.simulated_ticks(total, end, dt.timedelta(seconds=1))
    started = time.perf_counter()
    runs = [one(count, ticks, 60.0 if quick else 600.0) for count in counts]
    rates = [r["ticks_per_s"] for r in runs]
    return {"workers": list(counts), "ticks_per_s": rates, "ticks": total,
            "two_over_one": round(rates[1] / rates[0], 2) if rates[0] else None, "runs": runs,
            "section_s": round(time.perf_counter() - started, 1)}
