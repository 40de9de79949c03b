"""Batch analytics cost: Parquet export, Spark jobs and load over one year of one-minute ticks of five coins (2.6 M)."""

from __future__ import annotations

import asyncio
import datetime as dt
import resource
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench import harness
from cryptoapp.analytics import submit
from cryptoapp.analytics.export import READ_TIMEOUT_S, export_parquet
from cryptoapp.analytics.load import load_results
from cryptoapp.prices.models import UTC, PriceTick
from cryptoapp.schema import SIMULATED, iso_z
from cryptoapp.storage import PriceStore
from cryptoapp.storage.ticks import to_document

# A fixed window end: the seeded year stays valid between runs (and is never "today" for the export).
WINDOW_END = dt.datetime(2025, 11, 21, tzinfo=UTC)
SEED_BATCH = 20_000
SEED_MARKER = "bench_seed"  # written last, so an interrupted seeding is seen and redone


@dataclass(frozen=True)
class Dataset:
    database: str
    days: int
    spacing: dt.timedelta
    keep: bool  # the full year stays between runs: seeding 2.6 M documents takes minutes here

    @property
    def count(self) -> int:
        return len(harness.DEFAULT_SYMBOLS) * int(self.days * 86400 // self.spacing.total_seconds())


def dataset(quick: bool) -> Dataset:
    if quick:  # two days of five coins every 10 minutes: proves the path, not the speed
        return Dataset(harness.unique_name("analytics"), 2, dt.timedelta(minutes=10), False)
    return Dataset("bench_analytics_1y", 365, dt.timedelta(minutes=1), True)


def ensure_seeded(client, data: Dataset) -> dict:
    """Seeds the five default coins' simulated ticks (insert_many in batches) unless a complete seeding is there."""
    db = client[data.database]
    marker = db[SEED_MARKER].find_one({"_id": "seed"}) or {}
    shape = {"count": data.count, "spacing_s": data.spacing.total_seconds(), "end": WINDOW_END}
    # The marker alone decides: it is written after the last batch. A document count as well (as
    # history_query does) waited minutes here while FerretDB was busy with other queries.
    if all(marker.get(k) == v for k, v in shape.items()):
        return {"seeded_s": marker.get("seeded_s"), "seeded_at": marker.get("seeded_at"), "reused": True}
    client.drop_database(data.database)
    harness.create_indexes(db.prices)
    started = time.perf_counter()
    inserted_at = dt.datetime.now(UTC)
    batch = []
    for tick in harness.iter_simulated_ticks(data.count, WINDOW_END, data.spacing):
        batch.append(to_document(tick, inserted_at))
        if len(batch) == SEED_BATCH:
            db.prices.insert_many(batch, ordered=False)
            batch = []
    if batch:
        db.prices.insert_many(batch, ordered=False)
    seconds = round(time.perf_counter() - started, 1)
    db[SEED_MARKER].insert_one({"_id": "seed", **shape, "seeded_s": seconds, "seeded_at": inserted_at})
    return {"seeded_s": seconds, "seeded_at": inserted_at, "reused": False}


async def _export_and_load(database: str, out: Path, results: Path | None):
    async with PriceStore(harness.MONGO_URI, database, socket_timeout_s=READ_TIMEOUT_S) as store:
        if results is not None:
            return await load_results(store.analytics, results)
        return await export_parquet(store.analytics, out, progress=False)


def _export_one_changed_day(client, data: Dataset, out: Path):
    """The incremental case: one tick added to the last full day, exported again (count pass + that day's range)."""
    prices = client[data.database].prices
    # Half a minute after the last tick of the last full day, at that tick's price (a simulated tick, as all here).
    last = prices.find_one({"_id": f"BTC_{iso_z(WINDOW_END - data.spacing)}"})
    extra = to_document(PriceTick(ticker="BTC", timestamp=WINDOW_END - data.spacing / 2, value=last["value"],
                                  source=SIMULATED), dt.datetime.now(UTC))
    prices.insert_one(extra)
    try:
        return asyncio.run(_export_and_load(data.database, out, None))
    finally:  # the seeded year stays as its marker describes it
        prices.delete_one({"_id": extra["_id"]})


def _size_mb(path: Path) -> float:
    return round(sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20, 1)


def run(quick: bool) -> dict:
    data = dataset(quick)
    client = harness.mongo()
    work = Path(tempfile.mkdtemp(prefix="bench-analytics-"))
    out, results = work / "parquet", work / "results"
    try:
        seeding = ensure_seeded(client, data)
        first = asyncio.run(_export_and_load(data.database, out, None))
        export_rss_mb = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # peak so far (KiB)
        started = time.perf_counter()
        jobs = submit.run(str(out), str(results), capture=True)
        jobs_s = time.perf_counter() - started
        if jobs.returncode != 0:
            raise RuntimeError(f"spark-submit failed ({jobs.returncode}): {jobs.stderr.strip()[-2000:]}")
        loaded = asyncio.run(_export_and_load(data.database, out, results))
        again = _export_one_changed_day(client, data, out)  # after the jobs, so their results hold only the seeded year
        return {
            "ticks": data.count, "export_s": round(first.seconds, 1), "jobs_s": round(jobs_s, 1),
            "coins": len(harness.DEFAULT_SYMBOLS), "days": data.days, "spacing_s": data.spacing.total_seconds(),
            "database": data.database, **seeding,
            "exported_ticks": first.ticks, "exported_days": len(first.written), "parquet_mb": _size_mb(out),
            "export_peak_rss_mb": export_rss_mb,
            "export_one_day_changed_s": round(again.seconds, 1), "export_one_day_changed_days": len(again.written),
            "jobs_in_spark_s": loaded.run.get("jobs_s"), "spark_master": loaded.run.get("master"),
            "daily_rows": loaded.run.get("days"), "load_daily": list(loaded.daily),
            "load_correlation": list(loaded.correlation),
            "load_s": round(loaded.seconds, 1),
            "command": "python -m bench (section analytics); spark-submit line: " + " ".join(
                submit.command(str(out), str(results))),
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if not data.keep:
            client.drop_database(data.database)
        client.close()


if __name__ == "__main__":  # `python -m bench.analytics [--quick]` runs this section alone
    import json
    import sys

    print(json.dumps(run("--quick" in sys.argv[1:]), indent=2, default=str))
