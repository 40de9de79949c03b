"""`python -m bench.alerts_eval [--delivery]`: CPU per tick of judging 10,000 alert rules, per tick and per batch."""

# The part of the alerts that runs on the price stream for every batch: the per-tick reference
# (evaluation.evaluate_tick, what the worker ran before: every rule of the tick's coin visited for every tick) beside
# the batch evaluation the worker runs (AlertStage.evaluate_batch: per coin, the rules indexed by threshold, the
# windows shared per length), on the same rules and ticks, each with the states it would persist serialized, and
# checked to give the same firings. The rules over 10 coins (bench.alerts' layout) with thresholds `far` or `near`
# (LAYOUTS), and the worst case: every rule on the coin of every tick, `near`. Baseline in the same run:
# decode_tick() of the same ticks, which the sink already pays once per tick.
#
# --delivery: AlertDelivery.accept() (insert into crypto.alerts as pending) and the POST to a local receiver
# (testkit.webhook), firings handed over one at a time at --rate per second; latency from the hand-over
# to the insert returning (stored) and to the receiver having the request (sent), in a database of its own that
# is dropped afterwards.

from __future__ import annotations

import argparse
import asyncio
import os
import datetime as dt
import json
import random
import statistics
import time
import types

from cryptoapp.alerts.evaluation import DEFAULT_HYSTERESIS, RuleState, evaluate_tick
from cryptoapp.alerts.rules import AlertRule, Delivery
from cryptoapp.alerts.stage import AlertStage
from cryptoapp.prices.models import PriceTick, decode_tick
from cryptoapp.schema import UTC

T0 = dt.datetime(2025, 11, 21, 10, tzinfo=UTC)
KIND_MIX = (("above", 0.2), ("below", 0.2), ("change_pct", 0.3), ("volume_spike", 0.2), ("spread_bps", 0.1))


# Where the thresholds sit: `near` every rule close to the price (prices within 2 %, changes of 0.2-2 %, volume up
# 0.5-5 %, spreads of 1-5 bps while these ticks quote 0.4-8 bps): tens of firings a tick, as in a crash; `far` as
# bench.alerts places them (prices 10-40 % away, changes of 10-40 %, volume up 50-200 %, spreads of 10-50 bps):
# now and then a crossing, as real markets make.
LAYOUTS = {"near": {"price": (0.0, 0.02), "change_pct": (0.2, 2), "volume_spike": (0.5, 5), "spread_bps": (1, 5)},
           "far": {"price": (0.1, 0.4), "change_pct": (10, 40), "volume_spike": (50, 200), "spread_bps": (10, 50)}}


def make_rules(count: int, coins: list[str], rng: random.Random, price: float = 100_000.0,
               layout: str = "near") -> list[AlertRule]:
    rules, reach = [], LAYOUTS[layout]
    kinds = [k for k, share in KIND_MIX for _ in range(round(share * 100))]
    for i in range(count):
        kind = kinds[i % len(kinds)]
        coin = coins[i % len(coins)]
        if kind in ("above", "below"):
            threshold = price * (1 + rng.choice((-1, 1)) * rng.uniform(*reach["price"]))
        elif kind == "change_pct":
            threshold = rng.choice((-1, 1)) * rng.uniform(*reach[kind])
        else:
            threshold = rng.uniform(*reach[kind])
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


def _by_coin(rules: list[AlertRule]) -> dict[str, list[AlertRule]]:
    by_coin: dict[str, list[AlertRule]] = {}
    for rule in rules:
        by_coin.setdefault(rule.coin, []).append(rule)
    return by_coin


def per_tick(rules: list[AlertRule], batches: list[list[PriceTick]]) -> tuple[float, list, int]:
    """The reference, tick by tick, with the states it names serialized: (CPU µs per tick after the first batch,
    firings, firings of the first batch)."""
    by_coin, states, firings, first = _by_coin(rules), {}, [], 0
    for number, batch in enumerate(batches):
        if number == 1:  # the first batch made every rule's state: not timed
            started, first = time.process_time(), len(firings)  # CPU time: not inflated by other processes
        changed: set[str] = set()
        for tick in batch:
            firings += evaluate_tick(by_coin.get(tick.ticker, ()), states, tick, T0, DEFAULT_HYSTERESIS, changed)
        for rule_id in changed:
            json.dumps(states[rule_id].to_json())
    return (time.process_time() - started) / sum(map(len, batches[1:])) * 1e6, firings, first


def per_batch(rules: list[AlertRule], batches: list[list[PriceTick]]) -> tuple[float, list, int]:
    """The worker's evaluation (AlertStage.evaluate_batch and the states settle() writes, serialized): (CPU µs per
    tick after the first batch, firings, firings of the first batch)."""
    by_coin = _by_coin(rules)
    rulebook = types.SimpleNamespace(for_coin=lambda coin: by_coin.get(coin, []), pop_removed=lambda coin: set())
    app = types.SimpleNamespace(rulebook=rulebook, settings=types.SimpleNamespace(alert_hysteresis=DEFAULT_HYSTERESIS))
    stage, firings, first = AlertStage(app, {}, None), [], 0
    for number, batch in enumerate(batches):
        if number == 1:  # the first batch built the coins' indexes: not timed
            started, first = time.process_time(), len(firings)
        firings += stage.evaluate_batch([(None, tick) for tick in batch])
        while stage._unsaved:
            key, (_, book) = stage._unsaved.popitem()
            json.dumps(book.state_json(key))
    return (time.process_time() - started) / sum(map(len, batches[1:])) * 1e6, firings, first


def run_case(rules: list[AlertRule], ticks: list[PriceTick], batch: int) -> dict:
    batches = [ticks[i:i + batch] for i in range(0, len(ticks), batch)]
    old_us, old, _ = per_tick(rules, batches)
    new_us, new, first = per_batch(rules, batches)
    timed = sum(map(len, batches[1:]))
    return {"rules": len(rules), "coins": len({r.coin for r in rules}), "ticks_timed": timed, "batch": batch,
            "rules_per_tick": round(statistics.mean(sum(r.coin == t.ticker for r in rules) for t in ticks[:50])),
            "firings_per_tick_timed": round((len(new) - first) / timed, 2),
            "same_firings": [f.id for f in old] == [f.id for f in new],
            "per_tick_cpu_us": round(old_us, 1), "per_batch_cpu_us": round(new_us, 1),
            "speedup": round(old_us / new_us, 1), "cpu_share_at_1000_ticks_s": round(new_us * 1000 / 1e6, 3)}


def run(ticks: int = 1200, rules: int = 10_000, batch: int = 200, seed: int = 7) -> dict:
    """Batches of 200: what the sink takes in its 200 ms window at 1,000 ticks/s; the first one is not timed."""
    rng = random.Random(seed)
    one = ["BTC"]
    spread = [f"C{i:02d}" for i in range(10)]
    raw = [t.encode() for t in make_ticks(ticks, one, rng, per_second=1000)]
    started = time.process_time()
    for message in raw:
        decode_tick(message)
    decode_us = (time.process_time() - started) / len(raw) * 1e6
    cases = {"far_10_coins": ("far", spread), "near_10_coins": ("near", spread), "near_one_coin": ("near", one)}
    out = {"rules": rules}
    for name, (layout, coins) in cases.items():
        out[name] = run_case(make_rules(rules, coins, rng, layout=layout), make_ticks(ticks, coins, rng, 1000), batch)
    out["baseline_decode_tick_us"] = round(decode_us, 1)
    return out


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
                async with AlertDelivery(store.alerts, sweep_interval=3600) as delivery:
                    await store.alerts.insert_firings([])  # connect before timing
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
    parser.add_argument("--ticks", type=int, default=1200)
    parser.add_argument("--rules", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=200, help="ticks per batch of the worker's evaluation")
    parser.add_argument("--delivery", action="store_true", help="also time store + POST (needs MongoDB)")
    parser.add_argument("--rate", type=float, default=100.0, help="--delivery: firings per second")
    args = parser.parse_args()
    results = run(args.ticks, args.rules, args.batch)
    if args.delivery:
        results["delivery"] = asyncio.run(delivery_latency(rate=args.rate))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
