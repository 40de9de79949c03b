"""Alerts judged a batch at a time with the rules indexed by threshold: the same firings and states as the per-tick
reference, once per crossing inside a batch, only the crossed rules visited, old ticks ignored, restarts exact."""

import copy
import datetime as dt
import json
import random

import pytest

from cryptoapp.alerts import thresholds
from cryptoapp.alerts.coinrules import build
from cryptoapp.alerts.evaluation import RuleState, evaluate
from cryptoapp.alerts.rules import AlertRule, new_rule
from cryptoapp.prices.models import PriceTick
from tests.unit.alert_paths import HYSTERESIS, NOW, T0, Indexed, Reference, random_batches, random_rules


def tick(second: float, value: float, coin: str = "BTC", **fields) -> PriceTick:
    return PriceTick(ticker=coin, timestamp=T0 + dt.timedelta(seconds=second), value=value, source="coingecko",
                     **fields)


def judge(book, ticks):
    """The tick ids that fired, per rule id, and the keys to persist."""
    found, changed = book.judge(list(enumerate(ticks)), NOW)
    fired: dict[str, list[str]] = {}
    for _, firing in sorted(found, key=lambda item: item[0]):
        fired.setdefault(firing.rule_id, []).append(firing.tick_id)
    return fired, changed


@pytest.fixture
def visited(monkeypatch):
    """How many rules each batch's series walked (the rules the index handed over)."""
    counts = []
    walk = thresholds.walk

    def counting(hit, rearm, fire, *rest):
        counts.append(len(fire))
        return walk(hit, rearm, fire, *rest)

    monkeypatch.setattr(thresholds, "walk", counting)
    return counts


def test_a_rule_crossed_and_recrossed_inside_one_batch_fires_once_and_rearms_only_past_the_band():
    above, below = new_rule("BTC", "above", 100), new_rule("BTC", "below", 90)
    book = build("BTC", [above, below], HYSTERESIS)
    path = [99, 100.5, 99.8, 100.6, 99.6, 100.9, 89.9, 90.3, 89.5, 90.5, 89.0]
    ticks = [tick(i, p) for i, p in enumerate(path)]
    fired, changed = judge(book, ticks)
    # 100.5 fires; 99.8 and 99.6 stay inside the band (re-arms under 99.5): 100.6 and 100.9 fire nothing.
    # 89.9 fires `below`; 90.3 is inside its band (re-arms over 90.45); 90.5 re-arms it and 89.0 fires again.
    assert fired == {above.id: [ticks[1].tick_id], below.id: [ticks[6].tick_id, ticks[10].tick_id]}
    assert changed == {above.id, below.id}
    last = ticks[-1].timestamp.timestamp()  # the fall to 89.9 took `above` past its band: armed again
    assert [book.state_json(r.id) for r in (above, below)] == [{"armed": True, "last_tick_at": last},
                                                             {"armed": False, "last_tick_at": last}]
    again = [tick(20, 99.4), tick(21, 100.0)]
    assert judge(book, again) == ({above.id: [again[1].tick_id]}, {above.id, below.id})  # `below` re-armed


def test_many_rules_at_many_thresholds_over_a_big_move_fire_exactly_the_ones_crossed(visited):
    rng = random.Random(3)
    rules = [AlertRule(id=f"{i:08x}", coin="BTC", kind=rng.choice(("above", "below")),
                     threshold=rng.uniform(50, 150)) for i in range(10_000)]
    book = build("BTC", rules, HYSTERESIS)
    judge(book, [tick(0, 100.0)])  # the rules whose condition holds at the start fire on the first tick
    visited.clear()
    path = [100.0, 103.0, 106.0, 108.0, 112.5]  # a rise of 12.5 % in one batch
    fired, _ = judge(book, [tick(1 + i, p) for i, p in enumerate(path)])
    crossed = {r.id for r in rules if r.kind == "above" and 100 < r.threshold <= 112.5}
    # The `below` rules that fired at 100 re-arm where the rise took the price past their band.
    rearmed = {r.id for r in rules if r.kind == "below" and 100 <= r.threshold
               and r.threshold + HYSTERESIS * r.threshold < 112.5}
    assert set(fired) == crossed and all(len(ids) == 1 for ids in fired.values())
    assert sum(visited) == len(crossed) + len(rearmed)  # no other rule was looked at
    visited.clear()
    # A batch that moves inside what was crossed visits no rule: none fires or re-arms there.
    assert judge(book, [tick(10 + i, p) for i, p in enumerate((112.4, 112.5, 112.45))]) == ({}, set())
    assert visited == []


@pytest.mark.parametrize("seed", range(20))
def test_the_indexed_evaluation_gives_the_per_tick_references_firings_and_states(seed):
    rng = random.Random(seed)
    rules = random_rules(rng, 60)
    ref, mine = Reference(rules), Indexed(rules)
    for ticks in random_batches(rng, 25, rng.choice((1, 7, 60))):
        assert mine.batch(ticks) == ref.batch(ticks)
        assert {key for key in mine.changed if "/" not in key} == ref.armings  # every rule that fired or re-armed
        for rule in rules:
            state = ref.states.get(rule.id) or RuleState()
            assert mine.state(rule) == {"armed": state.armed, "last_tick_at": state.last_tick_at}
            saved = ref.table.get(rule.id) or {"armed": True}
            assert mine.table.get(rule.id, {"armed": True})["armed"] == saved["armed"]
            if rule.window_s and state.last_tick_at is not None:
                window = mine.window(rule)
                assert (window.buckets, window.low, window.low_at, window.high, window.high_at) == \
                    (state.buckets, state.low, state.low_at, state.high, state.high_at)
                persisted = mine.table.get(f"{rule.coin}/{'volume' if rule.kind == 'volume_spike' else 'price'}/"
                                           f"{rule.window_s}", {"buckets": []})["buckets"]
                # Written whenever a bucket opened or dropped: what can lag is the newest bucket's low and high.
                assert [b[0] for b in persisted] == [b[0] for b in state.buckets]
                assert persisted[:-1] == state.buckets[:-1]


@pytest.mark.parametrize("seed", range(10))
def test_after_a_crash_the_states_read_back_give_the_references_firings(seed):
    # Above, below and spread: both read back what they wrote (a rule's state when it fired or re-armed) and go on.
    rng = random.Random(100 + seed)
    rules = [r for r in random_rules(rng, 90) if r.kind in ("above", "below", "spread_bps")]
    ref, mine = Reference(rules), Indexed(rules)
    for number, ticks in enumerate(random_batches(rng, 30, rng.choice((1, 7, 60)))):
        if number % 7 == 6:
            ref, mine = Reference(rules, copy.deepcopy(ref.table)), Indexed(rules, copy.deepcopy(mine.table))
        assert mine.batch(ticks) == ref.batch(ticks)


@pytest.mark.parametrize("seed", range(10))
def test_every_state_written_and_read_back_goes_on_as_if_nothing_happened(seed):
    rng = random.Random(200 + seed)
    rules = random_rules(rng, 60)
    batches = random_batches(rng, 20, 30)
    going, restarted = Indexed(rules), Indexed(rules)
    for number, ticks in enumerate(batches):
        if number == 10:  # every key the books hold, through JSON, into fresh books
            table = {}
            for book in restarted.books.values():
                for key in [*(r.id for r in book.rules), *book.windows]:
                    table[key] = json.loads(json.dumps(book.state_json(key)))
            restarted = Indexed(rules, table)
        assert restarted.batch(ticks) == going.batch(ticks)


def test_redelivered_and_out_of_order_ticks_are_ignored_and_a_replay_fires_with_the_same_id():
    rule = new_rule("BTC", "above", 100)
    book = build("BTC", [rule], HYSTERESIS)
    first = [tick(0, 90), tick(5, 101), tick(5, 101), tick(3, 150)]  # the same tick twice, then one from the past
    fired, changed = judge(book, first)
    assert fired == {rule.id: [first[1].tick_id]}
    saved = {key: book.state_json(key) for key in changed}
    assert judge(book, [tick(5, 101), tick(4, 80), tick(4.5, 120)]) == ({}, set())  # redelivered after a commit
    # A crash after the firing was sent but before its state was written: the replay fires with the same id.
    assert judge(build("BTC", [rule], HYSTERESIS), first)[0] == {rule.id: [first[1].tick_id]}
    # With the state written, the replay of the same ticks fires nothing, nor does a newer tick still above.
    again = build("BTC", [rule], HYSTERESIS, saved=saved.get)
    assert judge(again, first + [tick(6, 102)]) == ({}, set())


def test_a_rule_added_later_judges_from_the_next_tick_against_the_coins_window():
    rising = new_rule("BTC", "change_pct", 3, window="15m")
    book = build("BTC", [rising], HYSTERESIS)
    judge(book, [tick(0, 100), tick(60, 101)])
    late = new_rule("BTC", "change_pct", 2, window="15m")
    book = build("BTC", [rising, late], HYSTERESIS, previous=book)
    # The window is the coin's, so the new rule measures the rise from the low the coin's window holds (100).
    # 102.5: +2.5 % from 100; an older tick (30 s) would be ignored, as it is for every rule of the coin.
    fired, _ = judge(book, [tick(30, 90), tick(120, 102.5)])
    assert fired == {late.id: [tick(120, 102.5).tick_id]}


def test_a_per_rule_state_of_the_former_format_seeds_the_coins_window():
    rule = new_rule("BTC", "change_pct", 3, window="15m")
    old = RuleState()
    for second, value in ((0, 100), (60, 99), (120, 101)):
        evaluate(rule, old, tick(second, value), NOW)
    book = build("BTC", [rule], HYSTERESIS, saved={rule.id: old.to_json()}.get)
    window = book.windows["BTC/price/900"]
    assert (window.buckets, window.low, window.last_at) == (old.buckets, 99, old.last_tick_at)
    fired, _ = judge(book, [tick(180, 102.0)])  # +3.03 % from the 99 of the former window
    assert fired == {rule.id: [tick(180, 102.0).tick_id]}
