"""The alerts off the price stream: firings (judged in the sink's batch, cryptoapp/alerts/stage.py) stored and
handed to the webhook delivery, and old firings deleted.

    crypto-prices ──the sink's batch (cryptoapp/pipeline.py) judges──> crypto-alerts ──store_alerts──>
        crypto.alert_outbox (pending) ──AlertDelivery, off the stream──> webhooks ──> crypto.alerts (final)
    alert_states: rule id -> its armed state, coin/value/window -> a shared window; changelog-backed (topics.py)
"""

from __future__ import annotations

import datetime as dt
import json
import logging

from cryptoapp.alerts.evaluation import Firing
from cryptoapp.alerts.topics import alerts_topic
from cryptoapp.app import app
from cryptoapp.schema import UTC
from cryptoapp.storage import StorageError
from cryptoapp.streams import written_before_commit

log = logging.getLogger(__name__)

STORE_BATCH = 500
STORE_WINDOW = 0.05  # seconds a partial batch of firings waits: they are few, and every one is awaited
RETENTION_CHECK_S = 600.0  # how often the leader deletes firings older than CRYPTO_ALERT_RETENTION_DAYS


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
