"""Webhook delivery against a local receiver that answers like Slack, Discord or a plain endpoint: payload shapes,
the idempotency key, retries on 5xx/429/timeouts (Retry-After honoured), final 4xx in one masked log line."""

import datetime as dt
import logging
import time

import aiohttp
import pytest

from cryptoapp.alerts.webhooks import DISCORD_MAX_CHARS, deliver, payload, retry_after_seconds
from cryptoapp.alerts.evaluation import RuleState, evaluate
from cryptoapp.alerts.rules import new_rule
from cryptoapp.prices.models import PriceTick

UTC = dt.timezone.utc
T0 = dt.datetime(2025, 11, 21, 10, tzinfo=UTC)
FAST = {"initial_backoff": 0.05, "max_backoff": 0.2, "timeout": 2.0}


def firing(webhook="https://example.com/hook/x", fmt="json"):
    rule = new_rule("BTC", "above", 100_000, webhook=webhook, format=fmt)
    return evaluate(rule, RuleState(), PriceTick(ticker="BTC", timestamp=T0, value=100_523.1, source="coingecko",
                                                 volume_24h=3.1e10), T0 + dt.timedelta(seconds=1))


@pytest.fixture
async def session():
    async with aiohttp.ClientSession() as http:
        yield http


def test_json_payload_is_the_documented_firing_without_its_webhook():
    sent = firing()
    body = payload(sent)
    assert (body["id"], body["rule_id"], body["coin"]) == (sent.id, sent.rule_id, "BTC")
    assert (body["threshold"], body["observed"], body["unit"]) == (100_000, 100_523.1, "USD")
    assert body["tick"]["timestamp"] == "2025-11-21T10:00:00Z" and body["fired_at"] == "2025-11-21T10:00:01Z"
    assert body["text"].startswith("BTC above 100,000 USD: 100,523.1 USD")
    assert "webhook" not in body and "format" not in body


def test_slack_and_discord_payloads_carry_the_text_in_their_field():
    slack, discord = firing(fmt="slack"), firing(fmt="discord")
    assert payload(slack) == {"text": slack.text}
    assert payload(discord) == {"content": discord.text}
    assert len(discord.text) < DISCORD_MAX_CHARS


def test_retry_after_is_read_as_seconds_or_as_an_http_date():
    now = dt.datetime(2025, 11, 21, 10, 0, 0, tzinfo=UTC)
    assert retry_after_seconds("7", now) == 7
    assert retry_after_seconds("Fri, 21 Nov 2025 10:00:30 GMT", now) == 30
    assert retry_after_seconds("Fri, 21 Nov 2025 09:00:00 GMT", now) == 0  # in the past: now
    assert retry_after_seconds("soon", now) is None and retry_after_seconds(None, now) is None


async def test_a_receiver_answering_500_then_200_gets_the_alert_exactly_once(receiver, session):
    receiver.fail_next = 2
    sent = firing(receiver.url("hook"))
    result = await deliver(session, sent, **FAST)
    assert (result.delivered, result.attempts) == (True, 3)
    assert [r.status for r in receiver.requests] == [500, 500, 200]
    assert receiver.ids() == [sent.id] * 3  # every try carries the same idempotency key
    assert list(receiver.handled) == [sent.id] and receiver.duplicates == 0
    assert receiver.handled[sent.id]["id"] == sent.id


async def test_slack_and_discord_receivers_accept_their_formats(receiver, session):
    slack, discord = firing(receiver.url("slack"), "slack"), firing(receiver.url("discord"), "discord")
    assert (await deliver(session, slack, **FAST)).delivered
    assert (await deliver(session, discord, **FAST)).delivered
    assert [r.status for r in receiver.requests] == [200, 204]
    assert receiver.requests[0].body == {"text": slack.text}
    assert receiver.requests[1].body == {"content": discord.text}


async def test_429_waits_as_long_as_retry_after_says(receiver, session):
    receiver.fail_next, receiver.fail_status, receiver.retry_after = 1, 429, "1"
    started = time.monotonic()
    result = await deliver(session, firing(receiver.url("discord"), "discord"), **FAST)
    assert result.delivered and result.attempts == 2
    assert time.monotonic() - started >= 0.95  # Retry-After (1 s), not the 0.05 s backoff


async def test_a_receiver_that_hangs_is_timed_out_and_tried_again(receiver, session):
    receiver.hang_next = 1
    started = time.monotonic()
    result = await deliver(session, firing(receiver.url("hook")), **{**FAST, "timeout": 0.5})
    assert result.delivered and result.attempts == 2
    assert time.monotonic() - started < 5


async def test_a_4xx_refusal_is_final_and_logged_in_one_line_without_the_token(receiver, session, caplog):
    caplog.set_level(logging.WARNING, logger="cryptoapp.alerts.webhooks")
    receiver.refuse_status = 404
    result = await deliver(session, firing(receiver.url("slack"), "slack"), **FAST)
    assert (result.delivered, result.attempts) == (False, 1)
    assert "HTTP 404 (no_service)" in result.error
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and "\n" not in lines[0]
    assert "/services/***/***/***" in lines[0] and "XXXXXXXX" not in lines[0]


async def test_a_slack_payload_sent_to_discord_is_refused_as_discord_refuses_it(receiver, session):
    result = await deliver(session, firing(receiver.url("discord"), "slack"), **FAST)
    assert not result.delivered and result.attempts == 1
    assert 'HTTP 400 ({"message": "Cannot send an empty message", "code": 50006})' in result.error


async def test_an_unreachable_receiver_is_retried_until_the_deadline(session):
    result = await deliver(session, firing("http://127.0.0.1:9/hook/x"), **{**FAST, "give_up_after": 0.5})
    assert not result.delivered and result.attempts >= 2 and "unreachable" in result.error
