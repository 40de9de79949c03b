"""`python -m bench.alerts [--quick]`: tick -> alert stored and webhook received, through the real worker."""

# Issue 21's target: p99 < 1 s at 1,000 ticks/s with 10,000 rules, the worker as users run it (candles on).
# A bench producer publishes the simulated source's ticks of 10 coins at a steady rate into the worker's topic (as
# the latency section does); the worker holds the rules, 1,000 per coin, in the kind mix of bench.alerts_eval,
# with thresholds placed so that the random walk keeps crossing some of them (tens of firings a second, after
# a first burst of rules whose condition holds from the start, which the warm-up leaves out). Every rule POSTs
# to a local receiver (testkit.webhook) in this process, which stamps each request's arrival.
#
# Per firing of a tick created inside the window: tick creation -> fired (the firing's fired_at, stamped by the
# evaluating agent) and tick creation -> webhook received. A firing is POSTed only after its insert into
# crypto.alerts returned, so "received" is also "stored". Baseline in the same run: the sink's creation ->
# readable in crypto.prices for the same ticks (the worker's /latency/ samples, as the latency section takes them),
# i.e. what the price pipeline delivers beside the alerts.

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import math
import random
import sys
import time
from typing import Optional

import psutil

from bench import harness
from bench.alerts_eval import KIND_MIX
from bench.latency import COINS, produce_steadily, readable_samples
from bench.profiling import Profiler
from cryptoapp.alerts.rules import AlertRule, Delivery
from cryptoapp.coins import resolve_all
from cryptoapp.settings import load
from cryptoapp.sources.simulated import LEVELS
from testkit.audit import uncommitted
from testkit.processes import Worker
from testkit.webhook import FakeWebhookServer

RULES = 10_000


def make_rules(count: int, tickers: list[str], webhook: str, rng: random.Random) -> list[AlertRule]:
    """`count` rules spread evenly over the coins, kinds in KIND_MIX; thresholds the walk reaches now and then
    (prices 10-40 % above or below the coin's start (the simulated source's level), changes of 10-40 % in 5 min-1 h, volume up 50-200 %, spreads of
    1-5 bps, which these bid/ask-less ticks never give: evaluated and skipped, as for a CoinGecko coin).

    The simulated walk moves 0.08-0.15 % a tick (its step is meant for one poll a minute): at 100 ticks/s a coin
    moves ~10 % a minute, so 1,000 of these rules fire about ten times a second after the first burst (the rules
    whose condition holds at the start), 10,000 about a hundred: far more than real markets make them fire."""
    kinds = [kind for kind, share in KIND_MIX for _ in range(round(share * 100))]
    rules = []
    for i in range(count):
        kind, window = kinds[i % len(kinds)], None
        if kind in ("above", "below"):
            threshold = LEVELS[tickers[i % len(tickers)]][0] * (1 + rng.choice((-1, 1)) * rng.uniform(0.1, 0.4))
        elif kind == "change_pct":
            threshold, window = rng.choice((-1, 1)) * rng.uniform(10, 40), rng.choice((300, 900, 3600))
        elif kind == "volume_spike":
            threshold, window = rng.uniform(50, 200), rng.choice((300, 900, 3600))
        else:
            threshold = rng.uniform(1, 5)
        rules.append(AlertRule(id=f"{i:08x}", coin=tickers[i % len(tickers)], kind=kind, threshold=threshold,
                               window_s=window, delivery=Delivery(webhook=webhook)))
    return rules


def _created(iso: str) -> float:
    return dt.datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


async def _settle(name: str, topic: str, expected: int, alerts_db, timeout: float, alive) -> bool:
    """Every produced tick judged and stored (committed), every firing stored (alerts topic committed) and
    none pending (delivered or failed); False after `timeout` s."""
    deadline = time.monotonic() + timeout
    if not await harness.wait_committed(name, topic, expected, timeout, 0.2, alive):
        return False
    while time.monotonic() < deadline:
        alive()
        if await uncommitted(harness.KAFKA, name, f"{name}-alerts") == 0 and \
                alerts_db.count_documents({"status": "pending"}) == 0:
            return True
        await asyncio.sleep(0.5)
    return False


def _load(quick: bool, profiler: Profiler, rules: int, env: dict) -> dict:
    """Runs the worker under the load and collects what happened: the produced ticks, the stored firings, the
    receiver's requests, the sink's latency samples, the worker's CPU and memory."""
    rate = 100.0 if quick else 1000.0
    # Quick: no warm-up, so the first burst (rules whose condition holds at the start) is what gets timed.
    duration, warmup, drain = (5.0, 0.0, 60.0) if quick else (60.0, 5.0, 120.0)
    tail = 1.0 if quick else 5.0  # the load goes on past the window, so its last ticks see the same load
    name = harness.unique_name("alerts")
    topic = f"{name}-prices"
    tickers = [coin.ticker for coin in resolve_all(COINS)]
    client = harness.mongo()
    db = client[name]
    with FakeWebhookServer() as receiver:
        if rules:
            db.alert_rules.insert_many([r.to_document() for r in make_rules(rules, tickers, receiver.url("hook"),
                                                                            random.Random(7))])
        worker = Worker(name, {"CRYPTO_SOURCE": "simulated", "CRYPTO_INTERVAL": "1e9", "CRYPTO_SYMBOLS": "dogecoin",
                               "CRYPTO_TOPIC": topic, "CRYPTO_DATADIR": str(harness.ROOT / ".local" / "bench-faust"),
                               **env})
        try:
            asyncio.run(harness.create_topic(topic, load().partitions))
            worker.start(wait_web=False)
            proc = psutil.Process(worker.proc.pid)
            profiler.attach("alerts-worker", worker.proc.pid)
            if not asyncio.run(harness.wait_committed(name, topic, 1, 90, 0.2, worker._alive)):
                raise RuntimeError(f"the worker stored nothing within 90 s; see {worker.log_path}")
            cpu_before, wall_before = harness.cpu_seconds(proc), time.monotonic()
            produced = asyncio.run(produce_steadily(topic, COINS, rate, warmup + duration + tail))
            settled = asyncio.run(_settle(name, topic, len(produced), db.alerts, drain, worker._alive))
            cpu_share = (harness.cpu_seconds(proc) - cpu_before) / (time.monotonic() - wall_before)
            rss = harness.rss_mb(proc)
            samples = readable_samples(worker, min(created for _, created in produced))
            profiler.detach("alerts-worker")
            worker.stop()
            firings = list(db.alerts.find({}, {"tick.timestamp": 1, "fired_at": 1, "status": 1}))
            requests = list(receiver.requests)
        finally:
            profiler.detach("alerts-worker")
            worker.stop()
            harness.remove_run(client, name)
    return {"rate": rate, "duration": duration, "warmup": warmup, "produced": produced, "settled": settled,
            "cpu_share": cpu_share, "rss": rss, "samples": samples, "firings": firings, "requests": requests,
            "log": str(worker.log_path)}


def _measure(quick: bool, profiler: Profiler, rules: int, env: dict) -> dict:
    run_ = _load(quick, profiler, rules, env)
    firings, requests, duration, warmup = run_["firings"], run_["requests"], run_["duration"], run_["warmup"]
    ours = [(tick_id, created) for tick_id, created in run_["produced"] if not tick_id.startswith("DOGE_")]
    window_start = min(created for _, created in ours) + warmup
    window_end = window_start + duration

    def in_window(created: float) -> bool:
        return window_start <= created < window_end

    received: dict[str, float] = {}
    for request in requests:
        if request.status == 200:
            received.setdefault(request.body["id"], request.received_at)
    window = [f for f in firings if in_window(f["tick"]["timestamp"].timestamp())]
    fired_ms = [(f["fired_at"].timestamp() - f["tick"]["timestamp"].timestamp()) * 1000 for f in window]
    received_ms = [(received[f["_id"]] - f["tick"]["timestamp"].timestamp()) * 1000 if f["_id"] in received
                   else math.inf for f in window]
    sink_ms = [(at - created) * 1000 for created, at in run_["samples"] if in_window(created)]
    sink_ms += [math.inf] * max(0, sum(1 for _, created in ours if in_window(created)) - len(sink_ms))
    ids = [r.body["id"] for r in requests if isinstance(r.body, dict)]
    return {
        "rules": rules, "coins": len(COINS), "target_rate": round(run_["rate"]),
        "achieved_rate": round(sum(1 for _, created in ours if in_window(created)) / duration, 1),
        "window_s": duration, "warmup_s": warmup,
        "firings": len(firings), "firings_in_window": len(window), "firings_per_s": round(len(window) / duration, 1),
        "p99_ms": harness.percentiles(received_ms)["p99"],
        "received_ms": harness.percentiles(received_ms),
        "fired_ms": harness.percentiles(fired_ms),
        "sink_readable_ms": harness.percentiles(sink_ms),
        "received_in_window": sum(1 for v in received_ms if not math.isinf(v)),
        "delivered": sum(1 for f in firings if f["status"] == "delivered"),
        "posts": len(requests), "repeated_posts": len(ids) - len(set(ids)), "settled_within_drain": run_["settled"],
        "worker_cpu_share": round(run_["cpu_share"], 2), "worker_rss_mb": run_["rss"],
        "how": "per firing of a tick created in the window: received = the receiver's arrival stamp minus the tick's "
               "creation (a firing is POSTed after its insert returned, so also stored); fired = its fired_at minus "
               "the creation; sink_readable = creation -> readable in crypto.prices for the same ticks (baseline); "
               "worker_cpu_share = worker CPU seconds per wall second over the load (2 cores = 2.0)",
        "log": run_["log"],
    }


def run(quick: bool, profiler: Optional[Profiler] = None, rules: int = RULES, env: Optional[dict] = None) -> dict:
    """The alerts run, and the same load on a worker without rules (baseline: what the alerts cost the pipeline).

    The worker runs as users run it (candles and views on); `env` adds settings, e.g. CRYPTO_CANDLES=0 to see
    the alerts beside the sink alone."""
    profiler = profiler or Profiler(None)
    env = dict(env or {})
    result = _measure(quick, profiler, rules, env)
    if rules:
        base = _measure(quick, Profiler(None), 0, env)
        result["baseline_no_rules"] = {k: base[k] for k in ("sink_readable_ms", "worker_cpu_share", "worker_rss_mb")}
    result["worker_env"] = env
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.alerts", description=__doc__.strip())
    parser.add_argument("--quick", action="store_true", help="100 ticks/s for 5 s: proves the code runs")
    parser.add_argument("--rules", type=int, default=RULES, help=f"rules in the worker (default {RULES}; 0: baseline only)")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE", help="a setting for the worker")
    args = parser.parse_args(argv)
    env = dict(item.split("=", 1) for item in args.env)
    print(json.dumps(run(args.quick, rules=args.rules, env=env), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
