"""Random alert rules and tick paths for the batch tests, and the two evaluations they compare: the per-tick
reference (evaluation.evaluate_tick) and the indexed one (coinrules.CoinRules), each with the table it writes."""

from __future__ import annotations

import datetime as dt
import random

from cryptoapp.alerts.coinrules import CoinRules, build, window_of
from cryptoapp.alerts.evaluation import RuleState, evaluate_tick
from cryptoapp.alerts.rules import AlertRule
from cryptoapp.prices.models import PriceTick

UTC = dt.timezone.utc
T0 = dt.datetime(2025, 11, 21, 10, tzinfo=UTC)
NOW = dt.datetime(2025, 11, 21, 12, tzinfo=UTC)
HYSTERESIS = 0.005
COINS = ("BTC", "ETH")


def random_rules(rng: random.Random, count: int, price: float = 100.0) -> list[AlertRule]:
    """Rules of all five kinds with thresholds the paths of `random_batches` cross, some of them often."""
    rules = []
    for i in range(count):
        kind = rng.choice(("above", "below", "change_pct", "volume_spike", "spread_bps"))
        window = rng.choice((60, 90, 300)) if kind in ("change_pct", "volume_spike") else None
        if kind in ("above", "below"):
            threshold = price * rng.uniform(0.9, 1.1)
        elif kind == "change_pct":
            threshold = rng.choice((-1, 1)) * rng.uniform(0.1, 3)
        elif kind == "volume_spike":
            threshold = rng.uniform(0.2, 3)
        else:
            threshold = rng.uniform(1, 30)
        rules.append(AlertRule(id=f"{i:08x}", coin=rng.choice(COINS), kind=kind, threshold=threshold,
                               window_s=window))
    return rules


def random_batches(rng: random.Random, batches: int, size: int) -> list[list[PriceTick]]:
    """Batches of ticks of both coins from two sources: random walks with jumps, quotes and volumes sometimes
    missing, source times mostly forward with repeats (redelivery) and ticks from the past (out of order)."""
    price = {coin: 100.0 for coin in COINS}
    volume = {coin: 1e9 for coin in COINS}
    clock, out, sent = 0.0, [], []
    for _ in range(batches):
        batch = []
        for _ in range(size):
            roll = rng.random()
            if sent and roll < 0.05:
                batch.append(rng.choice(sent[-50:]))  # redelivered
                continue
            coin = rng.choice(COINS)
            step = rng.choice((0.25, 1.0, 7.0)) if roll > 0.1 else -rng.uniform(0, 20)  # < 0.1: from the past
            clock = max(0.0, clock + step)
            jump = rng.gauss(0, 0.05) if rng.random() < 0.05 else rng.gauss(0, 0.004)
            price[coin] = max(1.0, price[coin] * (1 + jump))
            volume[coin] *= 1 + rng.gauss(0, 0.01)
            half = price[coin] * rng.uniform(0, 0.002)
            quoted = rng.random() < 0.8
            tick = PriceTick(ticker=coin, timestamp=T0 + dt.timedelta(seconds=round(clock, 3)), value=price[coin],
                             source="binanceus" if quoted else "coingecko",
                             bid_price=price[coin] - half if quoted else None,
                             ask_price=price[coin] + half if quoted else None,
                             volume_24h=volume[coin] if rng.random() < 0.9 else None)
            batch.append(tick)
            sent.append(tick)
        out.append(batch)
    return out


class Reference:
    """The per-tick evaluation over batches, with its table: a rule's state written when its revision moved."""

    def __init__(self, rules: list[AlertRule], table: dict | None = None):
        self.rules = rules
        self.table = {} if table is None else table
        self.states = {rule_id: RuleState.from_json(data) for rule_id, data in self.table.items()}
        self.armings: set[str] = set()  # the rules that fired or re-armed in the last batch

    def batch(self, ticks: list[PriceTick]) -> list:
        firings, changed, self.armings = [], set(), set()
        for tick in ticks:
            rules = [rule for rule in self.rules if rule.coin == tick.ticker]
            armed = {rule.id: self.states[rule.id].armed for rule in rules if rule.id in self.states}
            firings += evaluate_tick(rules, self.states, tick, NOW, HYSTERESIS, changed)
            self.armings |= {rule.id for rule in rules if self.states[rule.id].armed != armed.get(rule.id, True)}
        for rule_id in changed:
            self.table[rule_id] = self.states[rule_id].to_json()
        return firings


class Indexed:
    """The batch evaluation, one CoinRules per coin, with its table: the keys it names written after each batch."""

    def __init__(self, rules: list[AlertRule], table: dict | None = None):
        self.table = {} if table is None else table
        self.books: dict[str, CoinRules] = {
            coin: build(coin, [rule for rule in rules if rule.coin == coin], HYSTERESIS, saved=self.table.get)
            for coin in COINS}
        self.changed: set[str] = set()

    def batch(self, ticks: list[PriceTick]) -> list:
        found, self.changed = [], set()
        for coin, book in self.books.items():
            fired, changed = book.judge([(i, tick) for i, tick in enumerate(ticks) if tick.ticker == coin], NOW)
            found += fired
            for key in changed:
                self.table[key] = book.state_json(key)
            self.changed |= changed
        return [firing for _, firing in sorted(found, key=lambda item: item[0])]

    def window(self, rule: AlertRule):
        return self.books[rule.coin].windows[window_of(rule.coin, rule)]

    def state(self, rule: AlertRule) -> dict:
        return self.books[rule.coin].state_json(rule.id)
