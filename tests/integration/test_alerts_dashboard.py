"""Requires MongoDB: the Alerts tab (AppTest, no browser) creates, pauses and deletes rules and lists firings; the
real-time tab's badge and toasts for the firings of the last 10 minutes."""

import datetime as dt

import pytest

from cryptoapp.alerts.evaluation import RuleState, evaluate
from cryptoapp.alerts.rules import new_rule
from cryptoapp.prices.models import PriceTick
from testkit.processes import wait_for
from tests.support.pages import app_page, function_page, ran

pytestmark = pytest.mark.integration
UTC = dt.timezone.utc
SLACK = "https://hooks.slack.com/services/T0AAAAAAA/B0BBBBBBB/XXXXXXXXXXXXXXXXXXXXXXXX"


@pytest.fixture
def db(page_db):
    return page_db


def alerts_tab():
    import os

    from cryptoapp.settings.dashboard import load
    from dashboard import alerts

    alerts.render(load(os.environ))


def recent_badge():
    import os

    from cryptoapp.settings.dashboard import load
    from dashboard import alerts

    alerts.recent_badge(load(os.environ))


def run_tab():
    return function_page(alerts_tab)


def fill(at, threshold: str, kind: str = "above", window: str = "", webhook: str = ""):
    at.selectbox(key="alert_coin").set_value("BTC")
    at.selectbox(key="alert_kind").set_value(kind)
    at.text_input(key="alert_threshold").input(threshold)
    at.text_input(key="alert_window").input(window)
    at.text_input(key="alert_webhook").input(webhook)
    at.button[0].click()  # the form's submit button comes first on the page
    ran(at)


def texts(elements) -> list[str]:
    return [e.value for e in elements]


def test_the_form_refuses_an_invalid_rule_with_the_rules_message_and_adds_a_valid_one(db):
    db.latest.insert_one({"_id": "BTC", "sensor_id": "BTC", "series": "BTC", "source": "coingecko", "value": 9e4,
                          "timestamp": dt.datetime.now(UTC), "currency": "usd"})  # the worker stores BTC's prices
    at = run_tab()
    fill(at, "lots")
    assert any(t.startswith("Not added: Threshold: 'lots' is not a number") for t in texts(at.error)), texts(at.error)
    fill(at, "3", kind="change_pct")
    assert "Not added: Window: change_pct needs a window, e.g. 15m" in texts(at.error), texts(at.error)
    assert db.alert_rules.count_documents({}) == 0
    fill(at, "100000", webhook=SLACK)
    assert db.alert_rules.count_documents({}) == 1
    rule_id = db.alert_rules.find_one()["_id"]
    assert any(f"(rule {rule_id})" in t for t in texts(at.success))
    page = " ".join(texts(at.markdown))
    assert "BTC above 100,000 USD" in page and "services/***/***/***" in page and "XXXXXXXX" not in page


def test_rules_are_paused_resumed_and_deleted_from_their_buttons(db):
    rule = new_rule("ETH", "below", 2000)
    db.alert_rules.insert_one(rule.to_document())
    at = run_tab()
    at.button(key=f"pause_{rule.id}").click().run()
    assert db.alert_rules.find_one({"_id": rule.id})["enabled"] is False
    assert f"Rule {rule.id} paused." in texts(at.success)
    at.button(key=f"resume_{rule.id}").click().run()
    assert db.alert_rules.find_one({"_id": rule.id})["enabled"] is True
    at.button(key=f"delete_{rule.id}").click().run()
    assert db.alert_rules.count_documents({}) == 0
    assert any("No alert rules yet" in t for t in texts(at.info))


def test_recent_firings_are_listed_with_their_delivery_state_and_no_webhook(db):
    rule = new_rule("BTC", "above", 200_000, webhook=SLACK, format="slack")
    quiet = new_rule("ETH", "below", 2000)
    db.alert_rules.insert_many([rule.to_document(), quiet.to_document()])
    sending, done = firing_doc(rule, 3, 200_523.1), firing_doc(rule, 5, 200_611.0)
    db.alert_outbox.insert_one({**sending, "owner": "worker-a", "lease_until": dt.datetime.now(UTC)})
    db.alerts.insert_one({**done, "status": "delivered", "attempts": 1})
    at = run_tab()
    table = at.dataframe[0].value
    assert list(table.columns) == ["Fired (UTC)", "Coin", "Rule", "Observed", "Threshold", "Delivery", "Attempts",
                                   "Last error", "Rule id"]
    assert list(table["Rule"]) == ["BTC above 200,000 USD"] * 2 and list(table["Delivery"]) == ["sending", "delivered"]
    assert list(table["Observed"]) == ["200,523.10 USD", "200,611.00 USD"]  # a price's digits
    assert list(table["Threshold"]) == ["200,000 USD"] * 2
    assert list(table["Fired (UTC)"]) == [sending["fired_at"].strftime("%Y-%m-%d %H:%M:%S"),
                                          done["fired_at"].strftime("%Y-%m-%d %H:%M:%S")]
    cells = table.astype(str).to_numpy().ravel().tolist()
    assert not [c for c in cells if "None" in c or "+00:00" in c or c == "nan"], cells
    assert not {"webhook", "owner", "lease_until"} & {c.lower() for c in table.columns}
    # The rules list says when each rule last fired (the one still being delivered counts).
    lines = {m.value.split("`")[1]: m.value for m in at.markdown if m.value.startswith("`")}
    assert lines[rule.id].endswith(f"last fired {sending['fired_at']:%Y-%m-%d %H:%M} UTC (3 min ago)")
    assert lines[quiet.id].endswith("never fired")


def firing_doc(rule, minutes_ago: float, value: float) -> dict:
    at = dt.datetime.now(UTC) - dt.timedelta(minutes=minutes_ago)
    tick = PriceTick(ticker=rule.coin, timestamp=at, value=value, source="coingecko")
    return evaluate(rule, RuleState(), tick, at).to_document()


def test_the_alerts_tab_comes_after_history_and_opens_from_its_link(db):
    db.alert_rules.insert_one(new_rule("ETH", "below", 2000).to_document())
    at = app_page("Alerts")
    assert [t.label for t in at.tabs] == ["Real-time", "History", "Alerts", "Analytics"]
    assert "ETH below 2,000 USD" in " ".join(texts(at.markdown))


def test_the_live_badge_counts_the_last_10_minutes_and_toasts_what_arrives_while_the_page_is_open(db, monkeypatch):
    monkeypatch.setenv("DASHBOARD_REFRESH", "1")  # a new query each second: the second run sees the new firing
    above, below = new_rule("BTC", "above", 100_000), new_rule("ETH", "below", 2000)
    db.alerts.insert_many([firing_doc(above, 2, 100_523.1), firing_doc(below, 30, 1990.0)])
    at = function_page(recent_badge)
    badge = " ".join(texts(at.markdown))
    assert "1 alert in the last 10 min" in badge and "BTC above 100,000 USD (2 min ago)" in badge
    assert "ETH" not in badge and not at.toast  # fired before the page was opened: counted, not toasted
    db.alerts.insert_one(firing_doc(below, 0, 1985.5))
    wait_for(lambda: at.run() and not at.exception and at.toast, 10, "a toast for the new firing")
    assert [t.value for t in at.toast] == ["**Alert** ETH below 2,000 USD: 1,985.5 USD"]
    assert "2 alerts in the last 10 min" in " ".join(texts(at.markdown))
