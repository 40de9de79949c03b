"""The forecasting agent's cost to the price pipeline: the sink of the real worker with forecasts on, beside the same
sink with CRYPTO_FORECASTS=0 (candles on in both), on ticks already in Kafka.

The ticks come one a minute per coin, CoinGecko's cadence, and end a quarter of an hour ago: every tick closes a
minute bar at once, so each tick the sink stores is a bar the forecasters take. That is forecasting's heaviest load
per tick (a burst of history, such as a restart after a day down or the demo's first start), and the target is
the issue's: the sink with forecasts on at least 0.9 x off. `python -m bench.forecasts [--quick]` runs it alone.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import sys
from typing import Optional

from bench import harness
from bench.profiling import Profiler
from bench.sink_throughput import project_sink
from cryptoapp.schema import UTC

TARGET = 0.9
SPACING = dt.timedelta(minutes=1)


def run(quick: bool, profiler: Optional[Profiler] = None) -> dict:
    """{"sink_ratio": on / off, ...}: each side's sink figures (project_sink), and the better of `rounds` runs."""
    profiler = profiler or Profiler(None)
    total = 2_000 if quick else 50_000  # 50,000: a week of five coins, one tick a minute (the candles hold 170 h)
    rounds = 1 if quick else 2
    time_cap = 30.0 if quick else 300.0
    topic = harness.unique_name("forecasts-topic")
    end = dt.datetime.now(UTC).replace(second=30, microsecond=0) - dt.timedelta(minutes=15)
    ticks = harness.simulated_ticks(total, end, SPACING)
    names: list[str] = []
    runs: dict[str, list[dict]] = {"on": [], "off": []}
    client = harness.mongo()
    try:
        prefill_s = harness.prefilled_topic(topic, ticks)
        for _ in range(rounds):  # alternated, so a change in the machine's load weighs on both sides
            for side in ("on", "off"):
                name = harness.unique_name(f"forecasts-{side}")
                names.append(name)
                runs[side].append(project_sink(client, name, topic, total, time_cap, 0.5, profiler,
                                               env={"CRYPTO_FORECASTS": "1" if side == "on" else "0"}))
    finally:
        asyncio.run(harness.delete_topics_with_prefix(topic, *names))
        client.close()
    best = {side: max(results, key=lambda r: r["ticks_per_s"] or 0) for side, results in runs.items()}
    on, off = best["on"]["ticks_per_s"], best["off"]["ticks_per_s"]
    return {
        "ticks": total, "coins": len({t.ticker for t in ticks}), "spacing_s": SPACING.total_seconds(),
        "prefill_s": round(prefill_s, 2), "rounds": rounds,
        "sink_forecasts_on": best["on"], "sink_forecasts_off": best["off"],
        "sink_ticks_per_s_on_runs": [r["ticks_per_s"] for r in runs["on"]],
        "sink_ticks_per_s_off_runs": [r["ticks_per_s"] for r in runs["off"]],
        "sink_ratio": round(on / off, 2) if on and off else None, "target": f">= {TARGET}",
        "worker_rss_mb_on": best["on"].get("worker_rss_mb"), "worker_rss_mb_off": best["off"].get("worker_rss_mb"),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.forecasts", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2,000 ticks, one round (a smoke run)")
    args = parser.parse_args(argv)
    result = run(args.quick)
    print(json.dumps(result, indent=2, default=str))
    return 0 if result["sink_ratio"] is not None else 1


if __name__ == "__main__":
    sys.exit(main())
