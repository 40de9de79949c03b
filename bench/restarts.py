"""Crash-and-restart rounds: MongoDB stops under load, the worker gets SIGTERM, then restarts; ticks lost are counted.

    python -m bench.restarts [--rounds 40] [--interval 0.05]

Each round is tests/integration/test_faults_mongo.py's mid-stream case on a worker of its own: the
worker stores a steady stream, MongoDB stops, SIGTERM makes the worker exit 70 with its batch unwritten
and its offsets uncommitted, MongoDB returns, the worker restarts, and every tick that was in the topic
at the restart must reach MongoDB within 90 s. The exit status is 1 if any round lost a tick. This is
how the two Faust faults fixed in cryptoapp/recovery.py were found (docs/reliability.md).
"""

from __future__ import annotations

import argparse
import re
import shutil
import signal
import sys
import time
from typing import Optional

from testkit.processes import wait_for
from testkit.services import ROOT, PrivateServices

RETRYING = re.compile(r"WARNING.*MongoDB at .*; retry \d+ in")


def one_round(services: PrivateServices, round_no: int, interval: float) -> int:
    """Ticks of this round still missing 90 s after the restart (0 when the round is sound)."""
    with services.simulated_worker(f"restarts{round_no}", interval, stored=200) as (name, worker):
        services.down("mongo")
        wait_for(lambda: RETRYING.search(worker.log_text()), 60, "the sink retrying")
        code = worker.stop(signal.SIGTERM)
        services.up("mongo")
        worker.start()
        try:
            services.all_stored(name, worker=worker)
            missing = 0
        except AssertionError as exc:
            missing = int(re.search(r"(\d+) still missing", str(exc)).group(1))
        print(f"[{time.strftime('%H:%M:%S')}] round {round_no}: SIGTERM exit {code}, "
              f"{missing} ticks missing after the restart" + (f" (log: {worker.log_path})" if missing else ""),
              flush=True)
        return missing


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.restarts", description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--interval", type=float, default=0.05, help="poll interval of the simulated source (s)")
    args = parser.parse_args(argv)
    local = ROOT / ".local" / "restarts"
    shutil.rmtree(local, ignore_errors=True)
    services = PrivateServices(local)
    try:
        services.up()
        lost = [one_round(services, n, args.interval) for n in range(args.rounds)]
    finally:
        services.close()
    bad = sum(1 for n in lost if n)
    print(f"{args.rounds} rounds: {bad} lost ticks ({sum(lost)} in all)")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
