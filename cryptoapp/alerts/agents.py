"""The alerts on the stream: every tick judged against its coin's rules (state in a changelog table), firings stored and delivered.

    crypto-prices ──the sink (prices/agents.py) calls evaluate_alerts──> crypto-alerts ──store_alerts──>
        crypto.alert_outbox (pending) ──AlertDelivery, off the stream──> webhooks ──> crypto.alerts (final)
    alert_states: rule id -> RuleState JSON, changelog-backed

Once per crossing, across restarts: a firing is acknowledged by Kafka before the state that says the rule
fired is written, and Faust flushes both before it commits the tick's offset. A crash in between replays
the tick, which fires again with the same id (rule id + tick id); the outbox queues it once and
receivers deduplicate on it. A restart with the state written ignores the replayed tick (no newer than the
last one the rule saw).

A rule's state is written when it changes in a way that counts: armed or disarmed, a window bucket opened or
dropped (RuleState.revision), not for every tick. A restart replays the ticks since the last commit onto it;
what can be lost in a crash is the low and high a window's newest bucket reached from ticks already
committed, at most 1/60 of the window: the precision the buckets keep anyway. Writing every rule's state
for every tick would send a changelog record per rule and tick: 100,000 a second for 1,000 rules at 1,000
ticks/s, of up to 5 kB each.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Awaitable, Callable

from cryptoapp.alerts.evaluation import Firing, RuleState, evaluate_tick
from cryptoapp.app import CHANGELOG_SEGMENT_MS, app
from cryptoapp.schema import UTC
from cryptoapp.storage import StorageError
from cryptoapp.streams import in_partition_of, written_before_commit

log = logging.getLogger(__name__)

STORE_BATCH = 500
STORE_WINDOW = 0.05  # seconds a partial batch of firings waits: they are few, and every one is awaited
RETENTION_CHECK_S = 600.0  # how often the leader deletes firings older than CRYPTO_ALERT_RETENTION_DAYS

# Firings: key = ticker, value = Firing.to_json() as JSON (raw bytes: store_alerts parses them).
alerts_topic = app.topic(app.settings.alerts_topic, key_type=bytes, key_serializer="raw", value_type=bytes,
                         value_serializer="raw", partitions=app.settings.partitions, internal=True)
alert_states = app.Table(
    "alert_states",
    key_type=str,  # values are JSON objects: the app's default value serializer
    partitions=app.settings.partitions,
    extra_topic_configs={"segment.ms": str(CHANGELOG_SEGMENT_MS)},  # compacted soon: see latest_prices
    help="Rule id -> RuleState.to_json() (armed, last tick time, window buckets). Written while a tick of the "
         "rule's coin is processed, so into that coin's partition (Faust writes a table's changelog to the "
         "current event's partition): the state moves with the coin when partitions move between workers.",
)
_states: dict[str, RuleState] = {}  # live objects of the rules of this worker's coins; the table holds their JSON
# ticker -> (the rule book's list of the coin's rules, their states by id): rebuilt when the rule book's list changes
_coin_states: dict[str, tuple[list, dict[str, RuleState]]] = {}
_unsaved: dict[str, tuple] = {}  # rule id -> (an event of its coin, its state) changed and not written yet


@app.on_partitions_revoked.connect
async def _forget_states(app, revoked, **kwargs) -> None:
    # A coin that comes back later may have had its rules' state moved on by another worker.
    _states.clear()
    _coin_states.clear()
    _unsaved.clear()


def _states_of(ticker: str, rules: list) -> dict[str, RuleState]:
    held = _coin_states.get(ticker)
    if held is not None and held[0] is rules:
        return held[1]
    states = {}
    for rule in rules:
        state = _states.get(rule.id)
        if state is None:
            saved = alert_states.get(rule.id)
            state = _states[rule.id] = RuleState.from_json(saved) if saved else RuleState()
        states[rule.id] = state
    _coin_states[ticker] = (rules, states)
    return states


def evaluate_batch(ticks: list[tuple]) -> list[Firing]:
    """The firings of a batch of (event, tick) pairs; the rules whose state changed in a way that counts go to
    `_unsaved`, each with the (last) event of its coin: its state is written in that event's partition. Drops
    deleted rules' state."""
    rulebook, hysteresis = app.rulebook, app.settings.alert_hysteresis
    now = dt.datetime.now(UTC)
    firings: list[Firing] = []
    moved: set[str] = set()
    for event, tick in ticks:
        removed = rulebook.pop_removed(tick.ticker)
        if removed:
            with in_partition_of(event):  # the tombstone goes where the state was written
                for rule_id in removed:
                    alert_states.pop(rule_id, None)
                    _states.pop(rule_id, None)
                    _unsaved.pop(rule_id, None)
        rules = rulebook.for_coin(tick.ticker)
        if not rules:
            continue
        states = _states_of(tick.ticker, rules)
        firings += evaluate_tick(rules, states, tick, now, hysteresis, moved)
        if moved:
            for rule_id in moved:
                _unsaved[rule_id] = (event, states[rule_id])
            moved.clear()
    return firings


async def evaluate_alerts(ticks: list[tuple]) -> Callable[[], Awaitable[None]]:
    """Judges a batch of the sink's (event, tick) pairs against the rules of their coins and sends the firings to
    the alerts topic; returns the step that waits until Kafka has them all and then writes the changed states
    (module docstring). The sink calls that step after its archive write, so the two round trips overlap.

    The prices topic has one reader (cryptoapp/prices/agents.py): a second agent on it held a reference to every
    message, and one left unacked at a stop held the worker until its watchdog. Kafka's acknowledgement of the
    firings is awaited once per batch: once per tick that fired, each round trip held the whole consumer
    (measured: the sink fell seconds behind at 70 firings/s)."""
    await app.rulebook.loaded.wait()  # read as the worker starts; waits only while MongoDB does not answer
    firings = evaluate_batch(ticks)  # no await inside: a stop cannot cut it in half
    sent = [await alerts_topic.send(key=f.coin.encode(), value=json.dumps(f.to_json()).encode()) for f in firings]

    async def settle() -> None:
        for future in sent:
            await future
        # Written once Kafka has the firings; what a failed batch left unwritten is written by the next one.
        while _unsaved:
            rule_id, (event, state) = _unsaved.popitem()
            with in_partition_of(event):
                alert_states[rule_id] = state.to_json()

    return settle


def _decode_firings(events) -> list[Firing]:
    firings = []
    for event in events:
        try:
            firings.append(Firing.from_json(json.loads(event.value)))
        except Exception as exc:  # only this worker writes the topic: a bug or a foreign writer, not a stop
            message = event.message
            log.error("alerts: skipped an unreadable firing at %s[%d]@%d (%s: %s)", message.topic,
                      message.partition, message.offset, exc.__class__.__name__, exc)
    return firings


async def _store_firings(events) -> None:
    firings = _decode_firings(events)
    if firings:  # insert-if-absent as pending, then hand over (never waits for a webhook)
        await app.store.until_written(lambda: app.alert_delivery.accept(firings), f"a batch of {len(firings)} alerts")


@app.agent(alerts_topic, concurrency=1)
async def store_alerts(stream):
    """Stores each batch of firings and hands the new ones to the webhook delivery.

    Concurrency 1, as the price sink: a batch's offsets are committed only once it is stored."""
    async for events in stream.take_events(STORE_BATCH, within=STORE_WINDOW):
        await written_before_commit(app, events, _store_firings, "the alerts sink")


@app.timer(interval=RETENTION_CHECK_S, on_leader=True)
async def drop_old_firings() -> None:
    """Deletes firings older than CRYPTO_ALERT_RETENTION_DAYS that have left the outbox (0 keeps them all)."""
    days = app.settings.alert_retention_days
    if not days or app.should_stop:
        return
    try:
        deleted = await app.store.alerts.delete_firings_before(dt.datetime.now(UTC) - dt.timedelta(days=days))
    except StorageError as exc:
        log.warning("alerts: could not delete old firings (%s); next try in %.0f s", exc, RETENTION_CHECK_S)
        return
    if deleted:
        log.info("alerts: deleted %d firings older than %g days", deleted, days)
