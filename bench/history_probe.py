"""Times the dashboard's own `load_history` in a process of its own, so its memory is the dashboard query's alone."""

from __future__ import annotations

import datetime as dt
import json
import sys
import time

import psutil

from dashboard.data import connect, load_history


def main(uri: str, database: str, ticker: str, hours: str, now: str, runs: str, budget_s: str) -> None:
    """`python -m bench.history_probe URI DB TICKER HOURS NOW_ISO RUNS BUDGET_S` (run by bench.history_query).

    Prints one JSON line; stops before RUNS calls once BUDGET_S seconds are spent, after at least one.
    """
    proc = psutil.Process()
    client = connect(uri, timeout_ms=10_000)
    db = client[database]
    end = dt.datetime.fromisoformat(now)
    rss_before = proc.memory_info().rss
    times_ms, frame = [], None
    deadline = time.monotonic() + float(budget_s)
    while len(times_ms) < int(runs) and (not times_ms or time.monotonic() < deadline):
        started = time.perf_counter()
        frame = load_history(db, ticker, float(hours), now=end)
        times_ms.append((time.perf_counter() - started) * 1000)
    print(json.dumps({
        "times_ms": times_ms, "rows": len(frame), "ticks_in_window": frame.attrs.get("ticks"),
        "downsampled": frame.attrs.get("downsampled"), "bucket_s": frame.attrs.get("bucket_s"),
        "columns": list(frame.columns),
        "rss_before_mb": round(rss_before / 2**20, 1), "rss_after_mb": round(proc.memory_info().rss / 2**20, 1),
        "peak_rss_mb": round(_peak_rss() / 2**10, 1),
    }))
    client.close()


def _peak_rss() -> int:
    """VmHWM in kB: the largest resident size this process reached, which a single final reading can miss."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


if __name__ == "__main__":
    main(*sys.argv[1:])
