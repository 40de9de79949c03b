"""`python -m bench.alerts_eval [--delivery]`: CPU cost of evaluating one tick against 1,000 alert rules, and the
time from a firing to it being stored and POSTed (with --delivery: needs MongoDB at MONGO_URI).

The alerts target is tick -> alert stored and webhook sent, p99 < 1 s at 1,000 ticks/s with 1,000 rules.
This measures the part that runs on the price stream for every tick: evaluate_tick() over the rules of
the tick's coin. Worst case: all 1,000 rules on the coin of every tick. Spread: 1,000 rules over 50 coins
(20 per tick). Baseline, measured in the same run: decode_tick() of the same ticks, which the sink
already pays once per tick.

--delivery: AlertDelivery.accept() (insert into crypto.alerts as pending) and the POST to a local receiver
(tests/support/fake_webhook.py), firings handed over one at a time at --rate per second; latency from the
hand-over to the insert returning (stored) and to the receiver having the request (sent), in a database
of its own that is dropped afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import datetime as dt
import json
import random
import statistics
import time

from cryptoapp.alerts.evaluation import RuleState, evaluate_tick
from cryptoapp.alerts.rules import AlertRule, Delivery
from cryptoapp.prices.models import PriceTick, decode_tick
from cryptoapp.schema import UTC

T0 = dt.datetime(2025, 11, 21, 10, tzinfo=UTC)
KIND_MIX = (("above", 0.2), ("below", 0.2), ("change_pct", 0.3), ("volume_spike", 0.2), ("spread_bps", 0.1))


def make_rules(count: int, coins: list[str], rng: random.Random, price: float = 100_000.0) -> list[AlertRule]:
    rules = []
    kinds = [k for k, share in KIND_MIX for _ in range(round(share * 100))]
    for i in range(count):
        kind = kinds[i % len(kinds)]
        coin = coins[i % len(coins)]
        if kind in ("above", "below"):
            threshold = price * rng.uniform(0.98, 1.02)
        elif kind == "change_pct":
            threshold = rng.choice((-1, 1)) * rng.uniform(0.2, 2)
        elif kind == "volume_spike":
            threshold = rng.uniform(0.5, 5)
        else:
            threshold = rng.uniform(1, 5)
        window = rng.choice((300, 900, 3600)) if kind in ("change_pct", "volume_spike") else None
        rules.append(AlertRule(id=f"{i:08x}", coin=coin, kind=kind, threshold=threshold, window_s=window,
                               delivery=Delivery(webhook="https://example.com/hook")))
    return rules


def make_ticks(count: int, coins: list[str], rng: random.Random, per_second: float) -> list[PriceTick]:
    price, volume, ticks = 100_000.0, 3e10, []
    for i in range(count):
        price *= 1 + rng.gauss(0, 0.0008)
        volume *= 1 + rng.gauss(0, 0.0005)
        half = price * rng.uniform(0.00002, 0.0004)
        ticks.append(PriceTick(ticker=coins[i % len(coins)], timestamp=T0 + dt.timedelta(seconds=i / per_second),
                               value=price, source="binanceus", bid_price=price - half, ask_price=price + half,
                               volume_24h=volume))
    return ticks


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run_case(rules: list[AlertRule], ticks: list[PriceTick]) -> dict:
    by_coin: dict[str, list[AlertRule]] = {}
    for rule in rules:
        by_coin.setdefault(rule.coin, []).append(rule)
    states: dict[str, RuleState] = {}
    timings, firings = [], 0
    cpu_started = time.process_time()  # CPU time: unlike wall time, not inflated by other processes on a busy machine
    for tick in ticks:
        started = time.perf_counter()
        firings += len(evaluate_tick(by_coin.get(tick.ticker, ()), states, tick, T0))
        timings.append((time.perf_counter() - started) * 1e6)
    cpu_us = (time.process_time() - cpu_started) / len(ticks) * 1e6
    rules_per_tick = statistics.mean(len(by_coin.get(t.ticker, ())) for t in ticks)
    return {"ticks": len(ticks), "rules_per_tick": rules_per_tick, "firings": firings,
            "cpu_per_tick_us": round(cpu_us, 1),
            "wall_per_tick_us": {"p50": round(percentile(timings, 0.5), 1), "p99": round(percentile(timings, 0.99), 1),
                                 "max": round(max(timings), 1)},
            "cpu_per_rule_us": round(cpu_us / rules_per_tick, 3),
            "cpu_share_at_1000_ticks_s": round(cpu_us * 1000 / 1e6, 3),
            "largest_state_json_bytes": max(len(json.dumps(s.to_json())) for s in states.values())}


def run(ticks: int = 3000, rules: int = 1000, seed: int = 7) -> dict:
    rng = random.Random(seed)
    one = ["BTC"]
    spread = [f"C{i:02d}" for i in range(50)]
    raw = [t.encode() for t in make_ticks(ticks, one, rng, per_second=10)]
    started = time.process_time()
    for message in raw:
        decode_tick(message)
    decode_us = (time.process_time() - started) / len(raw) * 1e6
    return {
        "rules": rules,
        "worst_case_all_rules_one_coin": run_case(make_rules(rules, one, rng), make_ticks(ticks, one, rng, 10)),
        "spread_50_coins": run_case(make_rules(rules, spread, rng), make_ticks(ticks, spread, rng, 1000)),
        "baseline_decode_tick_us": round(decode_us, 1),
    }


async def delivery_latency(firings: int = 300, rate: float = 100.0) -> dict:
    from cryptoapp.alerts.delivery import AlertDelivery
    from cryptoapp.alerts.evaluation import evaluate
    from cryptoapp.alerts.rules import new_rule
    from cryptoapp.storage import PriceStore
    from testkit.webhook import FakeWebhookServer

    uri = os.environ.get("MONGO_URI", "mongodb://localhost:27017")
    database = f"bench-alerts-{os.getpid()}"
    stored_ms, started = [], {}
    with FakeWebhookServer() as receiver:
        rule = new_rule("BTC", "above", 1, webhook=receiver.url("hook"))
        ticks = make_ticks(firings, ["BTC"], random.Random(1), per_second=10)
        batch = [evaluate(rule, RuleState(), t, dt.datetime.now(UTC)) for t in ticks]
        async with PriceStore(uri, database) as store:
            try:
                async with AlertDelivery(store, sweep_interval=3600) as delivery:
                    await store.insert_firings([])  # connect before timing
                    for firing in batch:
                        t0 = time.monotonic()
                        started[firing.id] = t0
                        await delivery.accept([firing])
                        stored_ms.append((time.monotonic() - t0) * 1000)
                        await asyncio.sleep(max(0.0, 1 / rate - (time.monotonic() - t0)))
                    deadline = time.monotonic() + 60
                    while len(receiver.handled) < firings and time.monotonic() < deadline:
                        await asyncio.sleep(0.05)
            finally:
                await store.client.drop_database(database)
        sent_ms = [(r.at - started[r.headers["Idempotency-Key"]]) * 1000 for r in receiver.requests]
    return {"firings": firings, "rate_per_s": rate, "delivered": len(receiver.handled),
            "stored_ms": {"p50": round(percentile(stored_ms, 0.5), 1), "p99": round(percentile(stored_ms, 0.99), 1)},
            "sent_ms": {"p50": round(percentile(sent_ms, 0.5), 1), "p99": round(percentile(sent_ms, 0.99), 1),
                        "max": round(max(sent_ms), 1)}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ticks", type=int, default=3000)
    parser.add_argument("--rules", type=int, default=1000)
    parser.add_argument("--delivery", action="store_true", help="also time store + POST (needs MongoDB)")
    parser.add_argument("--rate", type=float, default=100.0, help="--delivery: firings per second")
    args = parser.parse_args()
    results = run(args.ticks, args.rules)
    if args.delivery:
        results["delivery"] = asyncio.run(delivery_latency(rate=args.rate))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
