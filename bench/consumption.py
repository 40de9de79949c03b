"""What consuming alone costs, per message: Faust's event path against aiokafka's batches, on the same topic.

`python -m bench.consumption [--ticks N]` (services up; not a section of `make bench`). It prefills a topic with the
project's simulated ticks, then drains it twice with no work per message: a Faust agent with `take_events(500)`,
as the sink reads, and an `AIOKafkaConsumer.getmany()` loop committing each batch. Each prints its CPU per message
from its first batch to its last, so start-up is left out. This is the floor under `sink.worker_cpu_us_per_tick_bare`
while the sink reads through Faust (docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import subprocess
import sys
import time

from aiokafka import AIOKafkaConsumer

from bench import harness

AGENT = r"""
import os, time, faust
topic_name, total = os.environ["BENCH_TOPIC"], int(os.environ["BENCH_TICKS"])
app = faust.App(topic_name, broker=os.environ["BENCH_KAFKA"], store="memory://", web_enabled=False)
topic = app.topic(topic_name, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")
seen = {"n": 0}
@app.agent(topic)
async def drain(stream):
    async for events in stream.take_events(500, within=0.2):
        if not seen["n"]:
            seen["first"], seen["cpu"] = len(events), time.process_time()
        seen["n"] += len(events)
        if seen["n"] >= total:
            us = (time.process_time() - seen["cpu"]) * 1e6 / (seen["n"] - seen["first"])
            os.write(1, f"\nus_per_message {us}\n".encode())  # fd 1 itself: Faust sends print() to its log
            os._exit(0)
"""


async def aiokafka_us_per_message(topic: str, total: int) -> float:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=harness.KAFKA, group_id=f"{topic}-raw",
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    try:
        seen, first, cpu = 0, 0, 0.0
        while seen < total:
            batch = await consumer.getmany(timeout_ms=1000, max_records=5000)
            got = sum(map(len, batch.values()))
            if got and not seen:
                first, cpu = got, time.process_time()
            seen += got
            if got:
                await consumer.commit()
        return (time.process_time() - cpu) * 1e6 / (seen - first)
    finally:
        await consumer.stop()


def faust_us_per_message(topic: str, total: int, workdir: str) -> float:
    script = os.path.join(workdir, "bench_consumption_agent.py")
    with open(script, "w") as out:
        out.write(AGENT)
    env = {**os.environ, "BENCH_TOPIC": topic, "BENCH_TICKS": str(total), "BENCH_KAFKA": f"kafka://{harness.KAFKA}",
           "PYTHONPATH": workdir}
    done = subprocess.run([sys.executable, "-m", "faust", "-A", "bench_consumption_agent", "worker", "-l", "warn",
                           "--without-web"], env=env, cwd=workdir, capture_output=True, text=True, timeout=600)
    lines = [line for line in done.stdout.splitlines() if line.startswith("us_per_message ")]
    if not lines:
        raise SystemExit(f"bench.consumption: the Faust agent gave no figure (exit {done.returncode}): {done.stderr[-500:]}")
    return float(lines[-1].split()[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ticks", type=int, default=40_000)
    args = parser.parse_args()
    topic = harness.unique_name("consumption")
    ticks = harness.simulated_ticks(args.ticks, dt.datetime.now(dt.timezone.utc), dt.timedelta(seconds=1))
    harness.prefilled_topic(topic, ticks)
    workdir = str(harness.ROOT / ".local" / "bench")
    os.makedirs(workdir, exist_ok=True)
    try:
        faust_us = faust_us_per_message(topic, args.ticks, workdir)
        aiokafka_us = asyncio.run(aiokafka_us_per_message(topic, args.ticks))
        result = {"ticks": args.ticks, "faust_take_events_us_per_message": round(faust_us, 1),
                  "aiokafka_getmany_us_per_message": round(aiokafka_us, 1)}
    finally:
        asyncio.run(harness.delete_topics_with_prefix(topic))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
