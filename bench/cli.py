"""What a person waits for at the command line: `cryptoapp --help` (and `--version`), wall time from exec to exit.

Each run is a fresh process, as a person types it, after one warm-up run so the files are in the page cache; the
figure is the median. The help answers without importing Faust, the driver or any stage (cryptoapp/help.py).
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

RUNS, QUICK_RUNS = 9, 3
COMMAND = Path(sys.executable).with_name("cryptoapp")


def wall_ms(*args: str) -> float:
    started = time.perf_counter()
    done = subprocess.run([str(COMMAND), *args], capture_output=True, text=True, timeout=60)
    elapsed = (time.perf_counter() - started) * 1000
    if done.returncode != 0:
        raise RuntimeError(f"`cryptoapp {' '.join(args)}` exited {done.returncode}: {done.stderr.strip()[-300:]}")
    return elapsed


def run(quick: bool) -> dict:
    runs = QUICK_RUNS if quick else RUNS
    wall_ms("--help")  # warm-up: the page cache, not the interpreter, is what a second run shares
    help_ms = [wall_ms("--help") for _ in range(runs)]
    version_ms = [wall_ms("--version") for _ in range(runs)]
    return {"status": "ok", "help_ms": round(statistics.median(help_ms)), "help_max_ms": round(max(help_ms)),
            "version_ms": round(statistics.median(version_ms)), "runs": runs,
            "how": "median wall time of a fresh `cryptoapp --help` process after one warm-up"}
