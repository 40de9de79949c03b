"""Requires MongoDB: alert rules and firings in the real server, the delivery outbox across a crash, rule changes
reaching a running worker's rule book within seconds."""

import asyncio
import datetime as dt
import os
import time

import pytest

from cryptoapp.alerts.delivery import AlertDelivery
from cryptoapp.alerts.evaluation import RuleState, evaluate
from cryptoapp.alerts.rulebook import RuleBook
from cryptoapp.alerts.rules import new_rule
from cryptoapp.prices.models import PriceTick
from cryptoapp.storage import PriceStore
from testkit.processes import async_wait_for

pytestmark = pytest.mark.integration
UTC = dt.timezone.utc
T0 = dt.datetime(2025, 11, 21, 10, tzinfo=UTC)
MONGO_URI = os.environ.get("MONGO_URI", "mongodb://localhost:27017")
FAST = {"initial_backoff": 0.05, "max_backoff": 0.2, "timeout": 2.0, "sweep_interval": 60}


@pytest.fixture
async def store(db):
    """The alerts' storage (PriceStore.alerts, what RuleBook and AlertDelivery are given) on this test's database."""
    async with PriceStore(MONGO_URI, db.name) as store:
        yield store.alerts


def fired(rule, second=0, value=101.0):
    return evaluate(rule, RuleState(), PriceTick(ticker=rule.coin, timestamp=T0 + dt.timedelta(seconds=second),
                                                 value=value, source="coingecko"), dt.datetime.now(UTC))


async def test_rules_are_added_listed_paused_and_deleted_and_each_change_moves_the_version(store, db):
    versions = [await store.rules_version()]
    above, below = new_rule("BTC", "above", 100_000), new_rule("ETH", "below", 2000, webhook="https://example.com/hook/x")
    for rule in (above, below):
        await store.add_rule(rule.to_document())
        versions.append(await store.rules_version())
    assert {d["_id"] for d in await store.list_rules()} == {above.id, below.id}
    assert db.alert_rules.find_one({"_id": below.id})["delivery"]["webhook"] == "https://example.com/hook/x"
    assert await store.set_rule_enabled(above.id, False, dt.datetime.now(UTC))
    versions.append(await store.rules_version())
    assert db.alert_rules.find_one({"_id": above.id})["enabled"] is False
    assert await store.delete_rule(below.id)
    versions.append(await store.rules_version())
    assert [d["_id"] for d in await store.list_rules()] == [above.id]
    assert len(set(versions)) == len(versions)  # every change is seen by a poller
    assert not await store.set_rule_enabled("0badc0de", True, dt.datetime.now(UTC))
    assert not await store.delete_rule("0badc0de")


async def test_firings_are_queued_once_by_id_and_leave_the_outbox_with_their_final_state(store, db):
    rule = new_rule("BTC", "above", 100, webhook="https://example.com/hook/x")
    first, second = fired(rule, 0), fired(rule, 1)
    assert await store.enqueue_firings([first.to_document()]) == [first.id]
    # A replay brings the same firing again, with a new one: only the new one is queued.
    assert await store.enqueue_firings([first.to_document(), second.to_document()]) == [second.id]
    assert [d["_id"] for d in await store.pending_firings()] == [first.id, second.id]
    await store.finish_firing(first.to_document(status="delivered", attempts=2, delivered_at=dt.datetime.now(UTC)))
    await store.finish_firing(second.to_document(status="failed", attempts=1, last_error="HTTP 404"))
    await store.finish_firing(second.to_document(status="failed", attempts=1, last_error="HTTP 404"))  # a crash's redo
    assert await store.pending_firings() == [] and db.alert_outbox.count_documents({}) == 0
    stored = db.alerts.find_one({"_id": first.id})
    assert (stored["status"], stored["delivered"], stored["attempts"]) == ("delivered", True, 2)
    assert db.alerts.find_one({"_id": second.id})["last_error"] == "HTTP 404" and db.alerts.count_documents({}) == 2


async def test_a_receiver_answering_500_then_200_gets_each_firing_once_and_it_is_marked_delivered(store, db, receiver):
    receiver.fail_next, receiver.retry_after = 1, "1"  # the retry waits a second: time to bring it again
    rule = new_rule("BTC", "above", 100, webhook=receiver.url("hook"))
    firing = fired(rule)
    async with AlertDelivery(store, **FAST) as delivery:
        assert await delivery.accept([firing]) == [firing.id]
        # Redelivered by Kafka while in flight: not queued, not sent again (a finished one would be sent again,
        # and receivers deduplicate it: crypto.alerts is not read back on this path, see cryptoapp/storage/alerts.py).
        await async_wait_for(lambda: receiver.requests, 5, "the first POST")
        assert await delivery.accept([firing]) == []
        await async_wait_for(lambda: db.alerts.find_one({"_id": firing.id, "status": "delivered"}), 10, "delivered")
    assert [r.status for r in receiver.requests] == [500, 200]
    assert list(receiver.handled) == [firing.id] and receiver.duplicates == 0
    assert db.alerts.find_one({"_id": firing.id})["attempts"] == 2


async def test_a_crash_between_storing_and_delivering_is_delivered_after_the_restart(store, db, receiver):
    rule = new_rule("BTC", "above", 100, webhook=receiver.url("slack"), format="slack")
    stored_only, sent_unmarked = fired(rule, 0), fired(rule, 1)
    # Crash 1: queued, never sent. Crash 2: sent, but the process died before recording it delivered.
    await store.enqueue_firings([stored_only.to_document(), sent_unmarked.to_document()])
    receiver.handled[sent_unmarked.id] = {"text": sent_unmarked.text}
    async with AlertDelivery(store, **FAST):  # the restarted worker
        await async_wait_for(lambda: db.alerts.count_documents({"status": "delivered"}) == 2, 10, "both delivered")
    assert sorted(receiver.ids()) == sorted([stored_only.id, sent_unmarked.id])
    assert set(receiver.handled) == {stored_only.id, sent_unmarked.id}  # each alert shown once by the receiver
    assert receiver.duplicates == 1  # the one sent before the crash, deduplicated by its id


async def test_a_failing_webhook_does_not_hold_up_another(store, db, receiver):
    receiver.hang_next = 1
    hanging = fired(new_rule("BTC", "above", 100, webhook=receiver.url("hook")))
    healthy = fired(new_rule("ETH", "above", 100, webhook=receiver.url("discord"), format="discord"))
    async with AlertDelivery(store, **{**FAST, "timeout": 30}) as delivery:
        await delivery.accept([hanging])
        await async_wait_for(lambda: receiver.requests, 5, "the hanging POST")
        started = time.monotonic()
        await delivery.accept([healthy])
        await async_wait_for(lambda: healthy.id in receiver.handled, 5, "the healthy webhook")
        assert time.monotonic() - started < 2
        assert db.alert_outbox.find_one({"_id": hanging.id})["status"] == "pending"


async def test_rule_changes_reach_a_running_rule_book_within_seconds(store):
    async with RuleBook(store, poll_interval=0.2) as book:
        rule = new_rule("SOL", "above", 500)
        await store.add_rule(rule.to_document())
        await async_wait_for(lambda: [r.id for r in book.for_coin("SOL")] == [rule.id], 3, "the new rule")
        await store.set_rule_enabled(rule.id, False, dt.datetime.now(UTC))
        await async_wait_for(lambda: book.for_coin("SOL") == [], 3, "the rule paused")
        assert book.rules[rule.id].enabled is False
        assert book.pop_removed("SOL") == set()
        await store.delete_rule(rule.id)
        await async_wait_for(lambda: rule.id not in book.rules, 3, "the rule deleted")
        assert book.pop_removed("SOL") == {rule.id} and book.pop_removed("SOL") == set()  # its state goes once
        assert book.for_coin("SOL") == []


async def test_workers_sharing_the_outbox_never_send_one_firing_both_and_take_over_a_dead_ones(store, db, receiver):
    receiver.hang_next = 1  # the first worker's POST never gets an answer
    firing = fired(new_rule("BTC", "above", 100, webhook=receiver.url("hook")))
    fast = {**FAST, "sweep_interval": 0.2, "timeout": 30}  # a lease of 0.6 s
    first = AlertDelivery(store, owner="worker-a", **fast)
    async with first:
        await first.accept([firing])
        await async_wait_for(lambda: receiver.requests, 5, "worker a's POST")
        async with AlertDelivery(store, owner="worker-b", **fast) as second:
            await asyncio.sleep(1.0)  # longer than a lease: a renews it at each of its sweeps, b must keep off
            assert await second.sweep() == 0 and receiver.ids() == [firing.id]
            assert db.alert_outbox.find_one({"_id": firing.id})["owner"] == "worker-a"
            await first.stop()  # worker a is gone: its lease runs out and b takes the firing over
            await async_wait_for(lambda: db.alerts.find_one({"_id": firing.id, "status": "delivered"}), 5,
                                 "the firing delivered by worker b")
    assert receiver.ids() == [firing.id, firing.id] and db.alert_outbox.count_documents({}) == 0
    assert list(receiver.handled) == [firing.id] and receiver.duplicates == 0


async def test_retention_deletes_old_finished_firings_and_never_the_outbox(store, db):
    rule = new_rule("BTC", "above", 100, webhook="https://example.com/hook/x")
    old, old_pending, recent = fired(rule, 0), fired(rule, 1), fired(rule, 2)
    ago = dt.datetime.now(UTC) - dt.timedelta(days=40)
    await store.insert_firings([{**old.to_document(status="delivered"), "fired_at": ago},
                                recent.to_document(status="delivered")])
    await store.enqueue_firings([{**old_pending.to_document(), "fired_at": ago}])
    assert await store.delete_firings_before(dt.datetime.now(UTC) - dt.timedelta(days=30)) == 1
    assert [d["_id"] for d in db.alerts.find()] == [recent.id]
    assert [d["_id"] for d in await store.pending_firings()] == [old_pending.id]
