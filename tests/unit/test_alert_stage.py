"""The alerts' step of the sink's batch: a batch of many coins judged per coin, firings in tick order, every state
written under an event of its own coin once Kafka has the firings, deleted rules' and unused windows' state dropped."""

import asyncio
import datetime as dt
import types

from faust.streams import _current_event

from cryptoapp.alerts.rules import new_rule
from cryptoapp.alerts.stage import AlertStage
from cryptoapp.prices.models import PriceTick

UTC = dt.timezone.utc
T0 = dt.datetime(2025, 11, 21, 10, tzinfo=UTC)


class Event:
    def __init__(self, coin: str):
        self.coin = coin


class Table(dict):
    """A state table that remembers the coin of the event each write and delete happened under."""

    def __init__(self):
        super().__init__()
        self.log: list[tuple[str, str, str]] = []

    def _coin(self) -> str:
        return _current_event.get()().coin

    def __setitem__(self, key, value):
        self.log.append(("set", key, self._coin()))
        super().__setitem__(key, value)

    def pop(self, key, default=None):
        if key in self:
            self.log.append(("pop", key, self._coin()))
        return super().pop(key, default)


class RuleBook:
    def __init__(self, rules):
        self.loaded = asyncio.Event()
        self.loaded.set()
        self.removed: dict[str, set[str]] = {}
        self.set(rules)

    def set(self, rules):
        self.by_coin: dict[str, list] = {}
        for rule in rules:
            self.by_coin.setdefault(rule.coin, []).append(rule)

    def for_coin(self, ticker):
        return self.by_coin.get(ticker, [])

    def pop_removed(self, ticker):
        return self.removed.pop(ticker, set())


class Topic:
    def __init__(self):
        self.sent = []

    async def send(self, key, value):
        self.sent.append(key)
        future = asyncio.get_running_loop().create_future()
        future.set_result(None)
        return future


def stage_with(rules):
    app = types.SimpleNamespace(rulebook=RuleBook(rules), settings=types.SimpleNamespace(alert_hysteresis=0.005))
    return AlertStage(app, Table(), Topic())


def pairs(*ticks):
    return [(Event(coin), PriceTick(ticker=coin, timestamp=T0 + dt.timedelta(seconds=second), value=value,
                                    source="coingecko")) for coin, second, value in ticks]


async def test_a_batch_of_many_coins_fires_in_tick_order_and_writes_each_state_in_its_coins_partition():
    btc, eth = new_rule("BTC", "above", 100), new_rule("ETH", "below", 10)
    falls = new_rule("ETH", "change_pct", -5, window="15m")
    stage = stage_with([btc, eth, falls])
    settle = await stage.judge(pairs(("ETH", 0, 11), ("BTC", 0, 99), ("ETH", 60, 9.9), ("BTC", 61, 101),
                                     ("ETH", 62, 10.4)))
    assert stage.table == {}  # nothing written before Kafka has the firings
    await settle()
    assert stage.topic.sent == [b"ETH", b"ETH", b"BTC"]  # 9.9 fires both ETH rules (-10 % from 11), then BTC
    writes = {(key, coin) for op, key, coin in stage.table.log if op == "set"}
    assert writes == {(eth.id, "ETH"), (falls.id, "ETH"), ("ETH/price/900", "ETH"), (btc.id, "BTC")}
    assert stage.table[btc.id] == {"armed": False, "last_tick_at": (T0 + dt.timedelta(seconds=61)).timestamp()}
    assert stage.table["ETH/price/900"]["low"] == 9.9
    settle = await stage.judge(pairs(("BTC", 62, 102), ("ETH", 63, 10.3)))  # nothing crossed: nothing written
    await settle()
    assert stage.topic.sent == [b"ETH", b"ETH", b"BTC"] and len(stage.table.log) == 4


async def test_deleted_rules_and_the_windows_no_rule_uses_lose_their_state():
    falls, rises = new_rule("ETH", "change_pct", -5, window="15m"), new_rule("ETH", "change_pct", 5, window="1h")
    stage = stage_with([falls, rises])
    settle = await stage.judge(pairs(("ETH", 0, 10), ("ETH", 60, 9.4)))
    await settle()
    assert set(stage.table) == {falls.id, "ETH/price/900", "ETH/price/3600"}
    stage.app.rulebook.set([rises])
    stage.app.rulebook.removed = {"ETH": {falls.id}}
    settle = await stage.judge(pairs(("BTC", 61, 1), ("ETH", 62, 9.5)))
    await settle()
    assert set(stage.table) == {"ETH/price/3600"}
    assert {(op, key, coin) for op, key, coin in stage.table.log if op == "pop"} == \
        {("pop", falls.id, "ETH"), ("pop", "ETH/price/900", "ETH")}


async def test_after_the_partitions_are_revoked_the_states_are_read_back_from_the_table():
    rule = new_rule("BTC", "above", 100)
    stage = stage_with([rule])
    settle = await stage.judge(pairs(("BTC", 0, 101)))
    await settle()
    stage.forget()
    settle = await stage.judge(pairs(("BTC", 0, 101), ("BTC", 1, 102)))  # redelivered, then still above
    await settle()
    assert stage.topic.sent == [b"BTC"]
