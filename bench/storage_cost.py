"""Storage cost: bytes per stored tick with its indexes (collStats), and a month of one coin at one tick a minute."""

from __future__ import annotations

import re
from pathlib import Path

import psutil

from bench import harness
from bench.reads import Archive, archives, archives_client, ensure_seeded

MONTH_AT_ONE_A_MINUTE = 30 * 24 * 60
SEED_CLAIM_BYTES = 2**30  # the seed's README: "about 1 GB per month per crypto"


def _sqlite_files(database: str) -> int | None:
    """Bytes of the database's SQLite files (FerretDB's SQLite backend keeps one file per database)."""
    server = harness.mongo_server_process()
    if server is None:
        return None
    try:
        url = next((a.split("=", 1)[1] for a in server.cmdline() if a.startswith("--sqlite-url=")), None)
    except psutil.Error:
        return None
    if url is None:
        return None
    folder = Path(re.sub(r"^file:", "", url).split("?")[0])
    files = [folder / f"{database}.sqlite{suffix}" for suffix in ("", "-wal")]
    return sum(f.stat().st_size for f in files if f.exists()) or None


def _measure(client, data: Archive) -> dict:
    stats = client[data.database].command("collStats", "prices")
    count = stats["count"]
    total = stats["size"] + stats["totalIndexSize"]
    per_tick = total / count
    files = _sqlite_files(data.database)
    return {
        "ticks": count, "size": stats["size"], "totalIndexSize": stats["totalIndexSize"],
        "indexSizes": stats.get("indexSizes"), "avgObjSize": stats.get("avgObjSize"),
        "bytes_per_tick": round(per_tick, 1),
        "month_1_per_minute_mb": round(per_tick * MONTH_AT_ONE_A_MINUTE / 2**20, 2),
        "sqlite_file_bytes": files, "sqlite_bytes_per_tick": round(files / count, 1) if files else None,
    }


def run(quick: bool) -> dict:
    sets = archives(quick)[:1]  # five coins at one tick a minute; the full run reuses the reads' 10,080-tick archive
    result = {"source": "collStats: size + totalIndexSize, divided by count",
              "month_ticks": MONTH_AT_ONE_A_MINUTE, "seed_claim_mb_per_month": SEED_CLAIM_BYTES / 2**20,
              "datasets": {}}
    with archives_client(sets) as client:
        for data in sets:
            ensure_seeded(client, data)
            result["datasets"][f"{data.ticks}"] = _measure(client, data)
    one_minute = result["datasets"][f"{sets[0].ticks}"]
    result["bytes_per_tick"] = one_minute["bytes_per_tick"]
    result["month_1_per_minute_mb"] = one_minute["month_1_per_minute_mb"]
    return result
