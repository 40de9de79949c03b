"""Alert evaluation: each kind fires once per crossing, stays quiet inside the band, re-arms past it; redelivered
and out-of-order ticks never fire again; paused rules are silent; state survives a JSON round trip."""

import datetime as dt
import json

import pytest

from cryptoapp.alerts.evaluation import Firing, RuleState, band, evaluate, evaluate_tick
from cryptoapp.alerts.windows import WINDOW_BUCKETS
from cryptoapp.alerts.rules import new_rule
from cryptoapp.prices.models import PriceTick

UTC = dt.timezone.utc
T0 = dt.datetime(2025, 11, 21, 10, tzinfo=UTC)
NOW = dt.datetime(2025, 11, 21, 12, tzinfo=UTC)


def tick(second: float, value: float = 100.0, **fields) -> PriceTick:
    return PriceTick(ticker=fields.pop("ticker", "BTC"), timestamp=T0 + dt.timedelta(seconds=second), value=value,
                     source=fields.pop("source", "coingecko"), **fields)


def run(rule, ticks, state=None):
    """The firings of each tick in turn, as a list of True/False (fired or not)."""
    state = state if state is not None else RuleState()
    return [evaluate(rule, state, t, NOW) is not None for t in ticks], state


def test_above_fires_once_per_crossing_and_rearms_only_below_the_band():
    rule = new_rule("BTC", "above", 100_000)
    assert band(rule) == 500  # 0.5 % of the threshold
    prices = [99_000, 100_000, 100_400, 99_600, 100_200, 99_499, 99_800, 100_001]
    fired, _ = run(rule, [tick(i, p) for i, p in enumerate(prices)])
    #        below  cross  above  in band  back up  past band  in band  cross again
    assert fired == [False, True, False, False, False, False, False, True]


def test_below_fires_once_per_crossing_and_rearms_only_above_the_band():
    rule = new_rule("ETH", "below", 2000)
    prices = [2100, 1999, 1990, 2009, 1995, 2011, 2000]
    fired, _ = run(rule, [tick(i, p, ticker="ETH") for i, p in enumerate(prices)])
    assert fired == [False, True, False, False, False, False, True]


def test_a_new_rule_whose_condition_already_holds_fires_on_its_first_tick():
    fired, _ = run(new_rule("BTC", "above", 100), [tick(0, 150), tick(1, 151)])
    assert fired == [True, False]


def test_change_pct_rise_is_measured_from_the_windows_low():
    rule = new_rule("BTC", "change_pct", 3, window="15m")
    state = RuleState()
    values = [100, 101, 99, 101.9, 102.0]  # a minute apart: +3.03 % from the low (99) at the 5th tick
    fired = [evaluate(rule, state, tick(60 * i, v), NOW) for i, v in enumerate(values)]
    assert [f is not None for f in fired] == [False, False, False, False, True]
    firing = fired[-1]
    assert (firing.reference, firing.reference_at) == (99, T0 + dt.timedelta(minutes=2))
    assert firing.observed == pytest.approx(3.0303, abs=1e-3) and firing.window_s == 900
    # In the band (rise still above 3 - 0.5 = 2.5 %): quiet; below it: re-armed; +3 % again: fires again.
    assert [evaluate(rule, state, tick(60 * (5 + i), v), NOW) is not None for i, v in
            enumerate([102.5, 101.6, 101.4, 102.0])] == [False, False, False, True]


def test_change_pct_fall_is_measured_from_the_windows_high_and_forgets_what_left_the_window():
    rule = new_rule("ETH", "change_pct", -2, window="10m")
    state = RuleState()
    # 100 eleven minutes before: out of the window by then, so the fall to 98.5 is measured from 99.
    ticks = [tick(0, 100), tick(5 * 60, 99), tick(11 * 60, 98.5), tick(12 * 60, 97.9)]
    assert [evaluate(rule, state, t, NOW) is not None for t in ticks] == [False, False, False, False]
    firing = evaluate(rule, state, tick(13 * 60, 96.9), NOW)  # 96.9 / 99 - 1 = -2.1 %
    assert firing is not None and firing.reference == 99 and firing.observed == pytest.approx(-2.12, abs=0.01)


def test_volume_spike_fires_on_the_24h_volume_and_ignores_ticks_without_one():
    rule = new_rule("BTC", "volume_spike", 50, window="1h")
    volumes = [30e9, 29e9, None, 40e9, 43.6e9, 44e9, 43e9]  # +50 % from 29e9 is 43.5e9
    fired, _ = run(rule, [tick(60 * i, 100, volume_24h=v) for i, v in enumerate(volumes)])
    assert fired == [False, False, False, False, True, False, False]


def test_spread_fires_on_bid_ask_in_basis_points_and_ignores_ticks_without_a_quote():
    rule = new_rule("BTC", "spread_bps", 10, coins_with_bid_ask={"BTC"})
    quotes = [(99.99, 100.01), (None, None), (99.949, 100.051), (99.94, 100.06), (99.9505, 100.0495), (99.99, 100.01),
              (99.94, 100.06)]
    fired, _ = run(rule, [tick(i, 100, bid_price=b, ask_price=a) for i, (b, a) in enumerate(quotes)])
    #                2 bps  no quote 10.2 bps  12 bps  9.9 bps (band)  2 bps  12 bps again
    assert fired == [False, False, True, False, False, False, True]


def test_a_redelivered_tick_does_not_fire_again_and_a_replay_from_older_state_gives_the_same_id():
    rule = new_rule("BTC", "above", 100)
    before = RuleState()
    evaluate(rule, before, tick(0, 90), NOW)
    saved = json.dumps(before.to_json())  # what the changelog held before the crossing
    state = RuleState.from_json(json.loads(saved))
    first = evaluate(rule, state, tick(1, 101), NOW)
    assert first is not None and first.id == f"{rule.id}_BTC_2025-11-21T10:00:01Z"
    assert evaluate(rule, state, tick(1, 101), NOW) is None  # the same tick again
    assert evaluate(rule, state, tick(0.5, 120), NOW) is None  # an older tick, out of order
    # A crash before the state was saved: the replay from the saved state fires with the same id.
    replayed = evaluate(rule, RuleState.from_json(json.loads(saved)), tick(1, 101), NOW + dt.timedelta(minutes=5))
    assert replayed is not None and replayed.id == first.id


def test_a_paused_rule_is_silent_and_its_state_untouched():
    rule = new_rule("BTC", "above", 100, enabled=False)
    fired, state = run(rule, [tick(0, 90), tick(1, 150)])
    assert fired == [False, False] and state == RuleState()


def test_window_state_stays_bounded_and_survives_json():
    rule = new_rule("BTC", "change_pct", 50, window="15m")
    state = RuleState()
    for i in range(5000):  # 5,000 ticks at 2 per second, longer than the window
        evaluate(rule, state, tick(i / 2, 100 + i % 7), NOW)
    assert len(state.buckets) <= WINDOW_BUCKETS + 1
    assert RuleState.from_json(json.loads(json.dumps(state.to_json()))) == state


def test_firing_holds_what_was_compared_and_round_trips_through_json_and_the_document():
    rule = new_rule("BTC", "above", 100_000, webhook="https://example.com/hook/x")
    firing = evaluate(rule, RuleState(), tick(0, 100_523.1, volume_24h=3.1e10, source="coingecko"), NOW)
    assert (firing.coin, firing.kind, firing.threshold, firing.observed, firing.unit) == \
        ("BTC", "above", 100_000, 100_523.1, "USD")
    assert firing.tick["timestamp"] == T0 and firing.tick["volume_24h"] == 3.1e10 and firing.tick["bid_price"] is None
    assert firing.text.startswith("BTC above 100,000 USD: 100,523.1 USD at 2025-11-21T10:00:00Z")
    assert Firing.from_json(json.loads(json.dumps(firing.to_json()))) == firing
    doc = firing.to_document()
    assert (doc["_id"], doc["status"], doc["delivered"]) == (firing.id, "pending", False)
    assert Firing.from_document(doc) == firing
    done = firing.to_document(status="delivered", attempts=2, delivered_at=NOW)
    assert (done["status"], done["delivered"], done["attempts"], done["delivered_at"]) == ("delivered", True, 2, NOW)
    assert new_rule("BTC", "above", 1).delivery.webhook is None
    assert evaluate(new_rule("BTC", "above", 1), RuleState(), tick(0, 2), NOW).to_document()["status"] == "stored"


def test_an_exchange_tick_fires_with_the_tick_id_it_is_stored_under():
    firing = evaluate(new_rule("BTC", "above", 1), RuleState(), tick(0.123, 2, source="binanceus"), NOW)
    assert firing.tick_id == "BTC_binanceus_2025-11-21T10:00:00.123Z"


def test_evaluate_tick_runs_every_rule_of_the_coin_with_its_own_state():
    rules = [new_rule("BTC", "above", 100), new_rule("BTC", "below", 50), new_rule("BTC", "above", 200)]
    states = {}
    assert [f.rule_id for f in evaluate_tick(rules, states, tick(0, 150), NOW)] == [rules[0].id]
    assert [f.rule_id for f in evaluate_tick(rules, states, tick(1, 40), NOW)] == [rules[1].id]
    assert set(states) == {r.id for r in rules}


def test_evaluate_tick_names_the_rules_whose_state_must_be_persisted():
    above, rising = new_rule("BTC", "above", 100), new_rule("BTC", "change_pct", 50, window="1h")
    states, changed = {}, set()
    evaluate_tick([above, rising], states, tick(0, 90), NOW, changed=changed)
    assert changed == {rising.id}  # a window bucket opened; `above` stayed armed
    changed.clear()
    firings = evaluate_tick([above, rising], states, tick(1, 101), NOW, changed=changed)
    assert [f.rule_id for f in firings] == [above.id] and firings[0].tick_id == "BTC_2025-11-21T10:00:01Z"
    assert changed == {above.id}  # disarmed; 101 fell into the same minute bucket of the 1 h window
    changed.clear()
    evaluate_tick([above, rising], states, tick(2, 100.5), NOW, changed=changed)
    assert changed == set()  # inside the band, same bucket: nothing worth a changelog record
