"""Reads that stay flat as history grows: the dashboard's own reads on archives of up to a year of five coins.

For each size, an archive of five coins at one tick a minute (the simulated source's walk) is seeded into a
database of its own, its candles and views made by the product (`cryptoapp candles rebuild`'s code), then the
dashboard's functions are timed as the page calls them: the live tab, the history tab at 24 h and 168 h, the coin
list. Beside them, the read the dashboard no longer makes: the history window's ticks filtered from the archive.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import math
import statistics
import time
from dataclasses import dataclass

from bench import harness
from cryptoapp.candles.archive import rebuild
from cryptoapp.schema import DEFAULT_SYMBOLS, DEFAULT_TICKERS, PRICES, UTC
from cryptoapp.settings import load
from cryptoapp.storage import PriceStore
from cryptoapp.storage.ticks import to_document
from dashboard import data

SIZES = (10_080, 604_800, 2_628_000)  # five coins, one tick a minute: 33.6 hours, 12 weeks, a year
QUICK_SIZES = (2_000,)
RUNS, QUICK_RUNS = 30, 5
SEED_BATCH = 20_000
SEED_MARKER = "bench_seed"  # written last, so an interrupted seeding is seen and redone
BASELINE_LIMIT = 700_000    # the archive scan is timed up to this size (at 2.6 M one read takes minutes)
TARGET_MS, FLAT = 250.0, 1.5


@dataclass(frozen=True)
class Archive:
    ticks: int
    database: str
    keep: bool  # full-size archives stay between runs: seeding a year takes minutes here


def archives(quick: bool) -> list[Archive]:
    if quick:
        return [Archive(n, harness.unique_name(f"reads-{n}"), False) for n in QUICK_SIZES]
    return [Archive(n, f"bench_reads_{n}", True) for n in SIZES]


@contextlib.contextmanager
def archives_client(sets: list[Archive]):
    """A MongoDB client for the archives; when the block ends the archives not kept are dropped and it is closed."""
    client = harness.mongo()
    try:
        yield client
    finally:
        for archive in sets:
            if not archive.keep:
                client.drop_database(archive.database)
        client.close()


def ensure_seeded(client, archive: Archive) -> dict:
    """The archive and its views, unless a complete seeding of the same size is there; returns how it got there."""
    db = client[archive.database]
    marker = db[SEED_MARKER].find_one({"_id": "seed"}) or {}
    if marker.get("ticks") == archive.ticks and db[PRICES].estimated_document_count() == archive.ticks:
        return {**{k: marker.get(k) for k in ("end", "seeded_s", "views_s", "seeded_at")}, "reused": True}
    client.drop_database(archive.database)
    harness.create_indexes(db[PRICES])
    end = dt.datetime.now(UTC).replace(second=0, microsecond=0)
    started = time.perf_counter()
    batch = []
    for tick in harness.iter_simulated_ticks(archive.ticks, end, dt.timedelta(minutes=1), DEFAULT_SYMBOLS):
        batch.append(to_document(tick, end))
        if len(batch) == SEED_BATCH:
            db[PRICES].insert_many(batch, ordered=False)
            batch = []
    if batch:
        db[PRICES].insert_many(batch, ordered=False)
    seeded_s = round(time.perf_counter() - started, 1)
    started = time.perf_counter()
    asyncio.run(_views(archive.database))
    views_s = round(time.perf_counter() - started, 1)
    db[SEED_MARKER].insert_one({"_id": "seed", "ticks": archive.ticks, "end": end, "seeded_s": seeded_s,
                                "views_s": views_s, "seeded_at": dt.datetime.now(UTC)})
    return {"end": end, "seeded_s": seeded_s, "views_s": views_s, "reused": False}


async def _views(database: str) -> None:
    async with PriceStore(harness.MONGO_URI, database) as store:
        await rebuild(store, grace_s=load().candle_grace_s, say=lambda *a: None)


def timed(fn, runs: int) -> dict:
    fn()  # warm-up: the first call pays for connections and imports
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        result = fn()
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    p95 = times[min(len(times) - 1, math.ceil(0.95 * len(times)) - 1)]
    return {"p50_ms": round(statistics.median(times), 1), "p95_ms": round(p95, 1), "max_ms": round(times[-1], 1),
            "runs": runs, "result": result}


def measure(archive: Archive, end: dt.datetime, runs: int) -> dict:
    client = data.connect(harness.MONGO_URI, timeout_ms=10_000)
    db = client[archive.database]
    try:
        live = timed(lambda: data.load_live(db, list(DEFAULT_TICKERS), now=end), runs)
        h24 = timed(lambda: data.load_history(db, "BTC", 24, now=end), runs)
        h168 = timed(lambda: data.load_history(db, "BTC", 168, now=end), runs)
        coins = timed(lambda: data.list_coins(db), runs)
        out = {"live": _summary(live, len(live["result"][1])), "history_24h": _history(h24),
               "history_168h": _history(h168), "coin_list": _summary(coins, len(coins["result"]))}
        if archive.ticks <= BASELINE_LIMIT:
            start = end - dt.timedelta(hours=168)
            scan = timed(lambda: db[PRICES].count_documents({"sensor_id": "BTC", "timestamp": {"$gte": start}}), 2)
            out["archive_scan_168h"] = _summary(scan, scan["result"])
        return out
    finally:
        client.close()


def _summary(timing: dict, points: int) -> dict:
    return {**{k: v for k, v in timing.items() if k != "result"}, "points": points}


def _history(timing: dict) -> dict:
    frame = timing["result"]
    return {**_summary(timing, len(frame)), "resolution": frame.attrs["resolution"]}


def run(quick: bool) -> dict:
    sets = archives(quick)
    per_size = {}
    with archives_client(sets) as client:
        for archive in sets:
            seeding = ensure_seeded(client, archive)
            per_size[archive.ticks] = {"database": archive.database, **seeding,
                                       **measure(archive, seeding["end"], QUICK_RUNS if quick else RUNS)}
    sizes = [a.ticks for a in sets]

    def column(read: str) -> list:
        return [per_size[n][read]["p95_ms"] for n in sizes]

    result = {"archive_ticks": sizes, "live_p95_ms": column("live"), "history_24h_p95_ms": column("history_24h"),
              "history_168h_p95_ms": column("history_168h"), "coin_list_p95_ms": column("coin_list"),
              "archive_scan_168h_p95_ms": [per_size[n].get("archive_scan_168h", {}).get("p95_ms") for n in sizes],
              "sizes": {str(n): per_size[n] for n in sizes}}
    reads = ("live_p95_ms", "history_24h_p95_ms", "history_168h_p95_ms", "coin_list_p95_ms")
    result["worst_p95_ms_at_largest"] = max(result[r][-1] for r in reads)
    result["largest_over_smallest"] = max(result[r][-1] / max(result[r][0], 1e-9) for r in reads)
    return result
