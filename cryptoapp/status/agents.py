"""Every worker writes its status (heartbeat, sources, backfill, consumer lag) into crypto.status every few seconds,
and a watchdog ends a worker whose Kafka consumer died, so a supervisor (or `make run` again) restarts it."""

from __future__ import annotations

import datetime as dt
import logging
import os

from cryptoapp import __version__
from cryptoapp.app import app
from cryptoapp.logs import Throttle
from cryptoapp.metrics import CONSUMER_LAG, readable_p90_s
from cryptoapp.schema import UTC
from cryptoapp.storage import StorageError

log = logging.getLogger(__name__)

STATUS_EVERY = 10.0    # seconds between two status writes; the dashboard calls a worker gone after 6 missed
WATCH_EVERY = 5.0      # seconds between two looks at the Kafka consumer
STORE_WARN_EVERY = 300.0
STARTED_AT = dt.datetime.now(UTC)
_store_warnings = Throttle(STORE_WARN_EVERY)  # one 'not written' line per interval while MongoDB is away


async def consumer_lag() -> dict[int, int]:
    """Messages of the prices topic not yet committed, per partition this worker owns."""
    consumer = app.consumer
    owned = sorted((tp for tp in consumer.assignment() if tp.topic == app.settings.topic), key=lambda tp: tp.partition)
    if not owned:
        return {}
    ends = await consumer.highwaters(*owned)
    lag = {}
    for tp in owned:
        done = consumer._committed_offset.get(tp)
        if done is None:
            done = await consumer.position(tp)
        lag[tp.partition] = max(0, (ends.get(tp) or 0) - (done or 0))
    return lag


async def status_document() -> dict:
    lag = await consumer_lag()
    for partition, behind in lag.items():
        CONSUMER_LAG.labels(str(partition)).set(behind)
    sources = {}
    if app.source is not None:
        sources[app.source.name] = app.source.health.to_json()
    if app.exchange_source is not None:
        sources[app.exchange_source.exchange_id] = app.exchange_source.health.to_json()
    return {"_id": app.worker_id, "worker": app.worker_id, "pid": os.getpid(), "version": __version__,
            "started_at": STARTED_AT, "heartbeat": dt.datetime.now(UTC), "leader": app.is_leader(),
            "partitions": sorted(lag), "lag": {str(p): n for p, n in lag.items()}, "sources": sources,
            "backfill": dict(app.backfill_progress), "readable_p90_s": readable_p90_s()}


@app.timer(interval=STATUS_EVERY)
async def report_status() -> None:
    """This worker's status document: written by every worker, each its own."""
    if app.should_stop or app.rebalancing:
        return
    try:
        await app.store.ticks.save_status(await status_document())
    except StorageError as exc:
        if (passed := _store_warnings.check()) is not None:
            log.warning("pipeline status not written (%s)%s; the dashboard will say the worker is gone", exc,
                        passed.note())


def consumer_failure() -> str | None:
    """Why this worker's Kafka consumer no longer works, or None while it does."""
    consumer = app._consumer
    thread = getattr(consumer, "_thread", None)
    for service in (consumer, thread):
        if service is not None and service.crashed:
            return repr(service.crash_reason)
    coordinator = getattr(getattr(thread, "_consumer", None), "_coordinator", None)
    task = getattr(coordinator, "_coordination_task", None)
    closing = getattr(coordinator, "_closing", None)
    if task is not None and task.done() and not (closing is not None and closing.done()) and not task.cancelled():
        return repr(task.exception()) if task.exception() else "the group coordination ended"
    return None


@app.timer(interval=WATCH_EVERY)
async def watch_consumer() -> None:
    """A worker whose consumer died would run on and look healthy while storing nothing: it ends instead."""
    if app.should_stop:
        return
    failure = consumer_failure()
    if failure is not None:
        log.critical("the Kafka consumer died (%s): exiting with 70 so the worker is restarted (make run, or your "
                     "supervisor); its offsets not committed are read again on restart", failure)
        logging.shutdown()
        os._exit(70)
