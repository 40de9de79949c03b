"""History query: the dashboard's own load_history over 168 h of one coin, at 1-minute and 1-second spacing."""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass

from bench import harness
from bench.profiling import Profiler
from cryptoapp.prices.models import to_document
from cryptoapp.schema import UTC

HOURS = 168
TICKER = "BTC"
# A fixed window end: seeded data stays valid between runs, and load_history gets it as `now`.
WINDOW_END = dt.datetime(2025, 11, 21, tzinfo=UTC)
SEED_BATCH = 20_000
SEED_MARKER = "bench_seed"  # written last, so an interrupted seeding is seen and redone


@dataclass(frozen=True)
class Dataset:
    label: str
    database: str
    spacing: dt.timedelta
    count: int
    keep: bool  # full-size datasets stay between runs: seeding 604,800 documents takes minutes here

    def describe(self) -> dict:
        return {"ticks": self.count, "spacing_s": self.spacing.total_seconds(), "database": self.database}


def datasets(quick: bool) -> list[Dataset]:
    if quick:
        return [Dataset("1-minute", harness.unique_name("history-1m"), dt.timedelta(minutes=1), 2_000, False),
                Dataset("1-second", harness.unique_name("history-1s"), dt.timedelta(seconds=1), 2_000, False)]
    return [Dataset("1-minute", "bench_history_1m", dt.timedelta(minutes=1), 10_080, True),
            Dataset("1-second", "bench_history_1s", dt.timedelta(seconds=1), 604_800, True)]


def ensure_seeded(client, data: Dataset) -> dict:
    """Seeds one coin's ticks (insert_many in large batches) unless a complete seeding of the same shape is there."""
    db = client[data.database]
    marker = db[SEED_MARKER].find_one({"_id": "seed"}) or {}
    shape = {"count": data.count, "spacing_s": data.spacing.total_seconds(), "end": WINDOW_END}
    if all(marker.get(k) == v for k, v in shape.items()) and db.prices.estimated_document_count() == data.count:
        return {"seeded_s": marker.get("seeded_s"), "seeded_at": marker.get("seeded_at"), "reused": True}
    client.drop_database(data.database)
    harness.create_indexes(db.prices)
    started = time.perf_counter()
    inserted_at = dt.datetime.now(UTC)
    batch = []
    for tick in harness.iter_simulated_ticks(data.count, WINDOW_END, data.spacing, coins=("bitcoin",)):
        batch.append(to_document(tick, inserted_at))
        if len(batch) == SEED_BATCH:
            db.prices.insert_many(batch, ordered=False)
            batch = []
    if batch:
        db.prices.insert_many(batch, ordered=False)
    seconds = round(time.perf_counter() - started, 1)
    # The seeding time is kept with the data, so a run that reuses it can still report what seeding cost.
    db[SEED_MARKER].insert_one({"_id": "seed", **shape, "seeded_s": seconds, "seeded_at": inserted_at})
    return {"seeded_s": seconds, "seeded_at": inserted_at, "reused": False}


def _probe(data: Dataset, runs: int, budget_s: float, profiler: Profiler) -> dict:
    """Runs bench.history_probe (the dashboard's load_history, `runs` times or until `budget_s`) in a fresh process."""
    proc = subprocess.Popen([sys.executable, "-m", "bench.history_probe", harness.MONGO_URI, data.database, TICKER,
                             str(HOURS), WINDOW_END.isoformat(), str(runs), str(budget_s)],
                            cwd=harness.ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    label = f"history-{data.label}"
    profiler.attach(label, proc.pid)
    try:
        out, err = proc.communicate(timeout=1800)
    finally:
        profiler.detach(label)
    if proc.returncode != 0:
        raise RuntimeError(f"bench.history_probe failed ({proc.returncode}): {err.strip()[-2000:]}")
    return json.loads(out.strip().splitlines()[-1])


def run(quick: bool, profiler: Profiler, budget_s: float = 300.0) -> dict:
    if importlib.util.find_spec("dashboard.data") is None:
        return {"status": "skipped", "reason": "dashboard.data (load_history) is not there yet"}
    runs = 3 if quick else 20
    client = harness.mongo()
    sets = datasets(quick)
    result = {"status": "ok", "hours": HOURS, "ticker": TICKER, "runs": runs, "budget_s_per_dataset": budget_s,
              "window_end": WINDOW_END.isoformat(),
              "query": "dashboard.data.load_history(db, ticker, hours, now=window_end), default max_points",
              "datasets": {}}
    try:
        for data in sets:
            entry = {**data.describe(), **ensure_seeded(client, data)}
            probe = _probe(data, runs, budget_s, profiler)
            times = probe.pop("times_ms")
            entry.update({
                "p50_ms": round(statistics.median(times), 1),
                "p95_ms": harness.percentiles(times, (95,))["p95"],
                "runs_done": len(times), "first_ms": round(times[0], 1), "max_ms": round(max(times), 1),
                **probe,
            })
            result["datasets"][data.label] = entry
    finally:
        for data in sets:
            if not data.keep:
                client.drop_database(data.database)
        client.close()
    return result
