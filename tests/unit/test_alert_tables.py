"""The Alerts tab's tables and chart markers: masked webhooks, malformed rules shown not raised, delivery states."""

import datetime as dt

import pandas as pd

from cryptoapp.alerts.evaluation import RuleState, evaluate
from cryptoapp.alerts.rules import new_rule
from cryptoapp.prices.models import PriceTick
from dashboard import frames, history_charts
from dashboard.alert_tables import (coins_with_bid_ask, fired_words, firing_layer, firing_markers, firings_frame,
                                    firings_table, rules_frame)

UTC = dt.timezone.utc
T0 = dt.datetime(2025, 11, 21, 10, tzinfo=UTC)
SLACK = "https://hooks.slack.com/services/T0AAAAAAA/B0BBBBBBB/XXXXXXXXXXXXXXXXXXXXXXXX"


def test_rules_table_masks_webhooks_and_shows_a_malformed_rule_as_a_row():
    good = new_rule("BTC", "above", 100_000, webhook=SLACK, format="slack")
    paused = new_rule("ETH", "change_pct", -3, window="15m", enabled=False)
    frame = rules_frame([good.to_document(), paused.to_document(), {"_id": "deadbeef", "coin": "BTC"}])
    assert list(frame["state"]) == ["enabled", "paused", "invalid"]
    assert frame.loc[0, "webhook"] == "https://hooks.slack.com/services/***/***/***"
    assert frame.loc[1, "rule"] == "ETH down 3 % within 15m"
    assert frame.loc[2, "problem"].startswith("stored rule 'deadbeef': kind: is missing")
    assert "XXXXXXXX" not in frame.to_string()


def test_firings_table_is_newest_first_with_readable_delivery_states():
    rule = new_rule("BTC", "above", 100, webhook=SLACK)
    docs = []
    for second, status in ((0, "delivered"), (60, "pending")):
        tick = PriceTick(ticker="BTC", timestamp=T0 + dt.timedelta(seconds=second), value=101.0, source="coingecko")
        doc = evaluate(rule, RuleState(), tick, T0 + dt.timedelta(seconds=second + 1)).to_document()
        docs.append({**doc, "status": status})
    frame = firings_frame(docs)
    assert list(frame["status"]) == ["sending", "delivered"]
    assert frame.loc[0, "fired_at"] == pd.Timestamp(T0 + dt.timedelta(seconds=61))
    assert "webhook" not in frame.columns


def test_only_coins_whose_newest_tick_has_bid_and_ask_can_have_spread_rules():
    latest = pd.DataFrame({"sensor_id": ["BTC", "ETH", "SOL"], "bid_price": [1.0, None, 2.0],
                           "ask_price": [1.1, None, None]})
    assert coins_with_bid_ask(latest) == {"BTC"}
    assert coins_with_bid_ask(latest.iloc[:0]) == set()


def test_firing_markers_sit_at_the_tick_that_fired():
    rule = new_rule("BTC", "above", 100)
    doc = evaluate(rule, RuleState(), PriceTick(ticker="BTC", timestamp=T0, value=101.0, source="coingecko"),
                   T0).to_document()
    trace = firing_markers([doc])
    assert list(trace.x) == [T0] and list(trace.y) == [101.0] and list(trace.text) == ["BTC above 100 USD"]


def test_firing_layer_marks_the_history_charts_price_panel_and_adds_nothing_without_firings():
    frame = frames.bar_frame([{"timestamp": T0 + dt.timedelta(minutes=m), "sensor_id": "BTC", "series": "BTC",
                             "open": 100.0, "high": 102.0, "low": 99.0, "close": 101.0, "ticks": 3,
                             "volume_24h": 1e9, "sources": ["coingecko"], "currency": "usd"} for m in range(5)])
    frame.attrs["resolution"] = "1m"
    doc = evaluate(new_rule("BTC", "above", 100), RuleState(),
                   PriceTick(ticker="BTC", timestamp=T0 + dt.timedelta(minutes=2), value=101.0, source="coingecko"),
                   T0).to_document()
    fig = history_charts.history_figure(frame, "BTC", layers=[firing_layer([doc])])
    marked = [t for t in fig.data if t.name == "alerts fired"]
    price_axis = next(t.yaxis for t in fig.data if t.type == "candlestick")
    assert len(marked) == 1 and marked[0].yaxis == price_axis and list(marked[0].y) == [101.0]
    plain = history_charts.history_figure(frame, "BTC", layers=[firing_layer([])])
    assert not [t for t in plain.data if t.name == "alerts fired"]


def test_the_firings_table_reads_as_words_with_units_and_no_none_or_offset():
    rule = new_rule("BTC", "above", 200_000)
    tick = PriceTick(ticker="BTC", timestamp=T0, value=200_523.11735, source="coingecko")
    doc = {**evaluate(rule, RuleState(), tick, T0).to_document(), "status": "stored", "attempts": 0}
    table = firings_table(firings_frame([doc]))
    assert table.iloc[0].to_dict() == {
        "Fired (UTC)": "2025-11-21 10:00:00", "Coin": "BTC", "Rule": "BTC above 200,000 USD",
        "Observed": "200,523.12 USD", "Threshold": "200,000 USD", "Delivery": "stored (no webhook)", "Attempts": "0",
        "Last error": "", "Rule id": rule.id}


def test_each_rule_says_when_it_last_fired():
    fired, quiet = new_rule("BTC", "above", 100), new_rule("ETH", "below", 2000)
    frame = rules_frame([fired.to_document(), quiet.to_document()], {fired.id: T0})
    now = T0 + dt.timedelta(minutes=5)
    assert fired_words(frame.loc[0, "last_fired"], now) == "last fired 2025-11-21 10:00 UTC (5 min ago)"
    assert fired_words(frame.loc[1, "last_fired"], now) == "never fired"
