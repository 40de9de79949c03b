"""Requires MongoDB: the Alerts tab (AppTest, no browser) creates, pauses and deletes rules and lists firings."""

import datetime as dt

import pytest
from pymongo import MongoClient
from streamlit.testing.v1 import AppTest

from cryptoapp.alerts.evaluation import RuleState, evaluate
from cryptoapp.alerts.rules import new_rule
from cryptoapp.prices.models import PriceTick

pytestmark = pytest.mark.integration
UTC = dt.timezone.utc
SLACK = "https://hooks.slack.com/services/T0AAAAAAA/B0BBBBBBB/XXXXXXXXXXXXXXXXXXXXXXXX"


@pytest.fixture
def db(services, unique_name, monkeypatch):
    monkeypatch.setenv("MONGO_URI", services["mongo_uri"])
    monkeypatch.setenv("MONGO_DB", unique_name)
    client = MongoClient(services["mongo_uri"], tz_aware=True, serverSelectionTimeoutMS=5000)
    yield client[unique_name]
    client.drop_database(unique_name)
    client.close()


def alerts_tab():
    import os

    from dashboard import alerts
    from cryptoapp.settings import load

    alerts.render(load(os.environ))


def run_tab():
    at = AppTest.from_function(alerts_tab, default_timeout=60)
    at.run()
    assert not at.exception, at.exception
    return at


def fill(at, threshold: str, kind: str = "above", window: str = "", webhook: str = ""):
    at.selectbox(key="alert_coin").set_value("BTC")
    at.selectbox(key="alert_kind").set_value(kind)
    at.text_input(key="alert_threshold").input(threshold)
    at.text_input(key="alert_window").input(window)
    at.text_input(key="alert_webhook").input(webhook)
    at.button[0].click()  # the form's submit button comes first on the page
    at.run()
    assert not at.exception, at.exception


def texts(elements) -> list[str]:
    return [e.value for e in elements]


def test_the_form_refuses_an_invalid_rule_with_the_rules_message_and_adds_a_valid_one(db):
    at = run_tab()
    fill(at, "lots")
    assert any(t.startswith("Not added: threshold: 'lots' is not a number") for t in texts(at.error)), texts(at.error)
    fill(at, "3", kind="change_pct")
    assert any(t.startswith("Not added: window: change_pct needs a window") for t in texts(at.error))
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
    rule = new_rule("BTC", "above", 100_000, webhook=SLACK, format="slack")
    tick = PriceTick(ticker="BTC", timestamp=dt.datetime.now(UTC), value=100_523.1, source="coingecko")
    firing = evaluate(rule, RuleState(), tick, dt.datetime.now(UTC))
    db.alerts.insert_one(firing.to_document())
    at = run_tab()
    table = at.dataframe[0].value
    assert list(table["rule"]) == ["BTC above 100,000 USD"] and list(table["status"]) == ["sending"]
    assert table.loc[0, "observed"] == 100_523.1
    assert "webhook" not in table.columns
