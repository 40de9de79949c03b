"""Delivers stored firings to their webhooks, off the price stream: POST with retries, at least once.

The outbox is crypto.alert_outbox: a firing is stored there (status `pending`) before any POST, and only
a 2xx answer (or a final refusal) moves it into crypto.alerts, as `delivered` (or `failed`). A worker that
dies in between finds it in the outbox when it starts again and sends it again; receivers deduplicate on
the firing id (the `Idempotency-Key` header, and `id` in the JSON payload). A webhook that fails or hangs only
delays its own firings: the price agents hand firings over with `submit()`, which never waits. The POST itself, its
payloads and its retries are cryptoapp/alerts/webhooks.py.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import socket
from typing import Optional

import aiohttp
from mode import Service
from tenacity import AsyncRetrying, retry_if_exception_type, wait_exponential_jitter

from cryptoapp.alerts.evaluation import DELIVERED, FAILED, Firing
from cryptoapp.alerts.webhooks import DeliveryResult, deliver
from cryptoapp.schema import UTC, bson_time
from cryptoapp.storage import StorageError

log = logging.getLogger(__name__)

LEASE_SWEEPS = 3  # a firing's owner keeps it this many sweep intervals without renewing (one or two may fail)


class AlertDelivery(Service):
    """Stores firings in the outbox and delivers them with worker tasks, never on the price stream's path.

    `store` is the worker's alerts storage (PriceStore.alerts). At most `max_in_flight` firings are being
    delivered (or waiting for a retry) at once, with at most `concurrency` POSTs open; more are left in the outbox
    (crypto.alert_outbox), where the sweep every `sweep_interval` s (and at start) finds them.

    Several workers share one outbox: each firing carries the `owner` delivering it and a lease (three sweep
    intervals, renewed by every sweep while it is in flight). A sweep takes over a pending firing only when
    it is its own (a restart of the same worker: at once) or its owner's lease has run out (a worker gone
    for good), and claims it with a compare-and-set, so two live workers never send one firing both.
    """

    def __init__(self, store, *, owner: str = "", timeout: float = 10.0, concurrency: int = 16,
                 max_in_flight: int = 10_000, sweep_interval: float = 30.0, initial_backoff: float = 1.0,
                 max_backoff: float = 300.0, give_up_after: float = 86400.0, **kwargs):
        super().__init__(**kwargs)
        self.store = store
        self.owner = owner or f"{socket.gethostname()}-{os.getpid()}"
        self.timeout = timeout
        self.concurrency = concurrency
        self.max_in_flight = max_in_flight
        self.sweep_interval = sweep_interval
        self.lease = LEASE_SWEEPS * sweep_interval
        self.backoff = {"initial_backoff": initial_backoff, "max_backoff": max_backoff, "give_up_after": give_up_after}
        self.session: Optional[aiohttp.ClientSession] = None
        self._queue: asyncio.Queue[Firing] = asyncio.Queue(max_in_flight)
        self._in_flight: set[str] = set()  # ids queued, being delivered or being recorded by this process
        self._finished: dict[str, dict] = {}  # id -> the final document of a firing delivered (or failed), unrecorded
        self._finished_event = asyncio.Event()
        self._slot = asyncio.Semaphore(concurrency)
        self.delivered = self.failed = 0

    async def on_start(self) -> None:
        self.session = aiohttp.ClientSession(headers={"Content-Type": "application/json"})

    async def on_stop(self) -> None:
        # What is still pending stays in the outbox: the next start delivers it.
        if self.session is not None:
            await self.session.close()

    def _lease_until(self) -> dt.datetime:
        return bson_time(dt.datetime.now(UTC) + dt.timedelta(seconds=self.lease))

    def submit(self, firing: Firing) -> bool:
        """Hands a stored, pending firing over for delivery without waiting; False when it is already being
        delivered or too many are (it stays pending and a sweep picks it up)."""
        if not firing.webhook or firing.id in self._in_flight or len(self._in_flight) >= self.max_in_flight:
            return False
        self._in_flight.add(firing.id)
        self._queue.put_nowait(firing)
        return True

    async def accept(self, firings: list[Firing]) -> list[str]:
        """Stores new firings: with a webhook in the outbox as pending, owned by this worker, and submits them;
        without one straight into crypto.alerts. Insert-if-absent, so a firing Kafka brings again is neither
        stored nor sent twice while it is in flight. Returns the ids that were new; StorageError when MongoDB
        does not take them."""
        lease = {"owner": self.owner, "lease_until": self._lease_until()}
        queued = set(await self.store.enqueue_firings([{**f.to_document(), **lease} for f in firings if f.webhook]))
        stored = set(await self.store.insert_firings([f.to_document() for f in firings if not f.webhook]))
        for firing in firings:
            if firing.id in queued:
                self.submit(firing)
        return [f.id for f in firings if f.id in queued or f.id in stored]

    async def sweep(self) -> int:
        """Renews the leases of the firings in flight here, then claims and submits the pending firings that are
        this worker's (after a restart: all it had) or whose owner's lease ran out."""
        if self._in_flight:
            await self.store.extend_leases(list(self._in_flight), self.owner, self._lease_until())
        now = dt.datetime.now(UTC)
        submitted = 0
        for doc in await self.store.pending_firings(limit=self.max_in_flight):
            owner, until = doc.get("owner"), doc.get("lease_until")
            if doc["_id"] in self._in_flight or (owner != self.owner and until is not None and until > now):
                continue
            if await self.store.claim_firing(doc["_id"], (owner, until), self.owner, self._lease_until()):
                submitted += self.submit(Firing.from_document(doc))
        if submitted:
            log.info("alerts: %d pending firings found in the outbox, delivering them", submitted)
        return submitted

    @Service.task
    async def _sweeping(self) -> None:
        while not self.should_stop:
            try:
                await self.sweep()
            except Exception as exc:  # MongoDB away: the next sweep tries again; firings stay pending
                log.warning("alerts: could not read the outbox (%s); next try in %.0f s", exc, self.sweep_interval)
            await self.sleep(self.sweep_interval)

    @Service.task
    async def _dispatching(self) -> None:
        while not self.should_stop:
            firing = await self._queue.get()
            self.add_future(self._deliver_one(firing))

    async def _deliver_one(self, firing: Firing) -> None:
        recording = False
        try:
            result = await deliver(self.session, firing, timeout=self.timeout, slot=self._slot, **self.backoff)
            recording = self._finish(firing, result)
        except asyncio.CancelledError:
            raise  # stopping: it stays pending and the next start sends it
        except Exception:  # a bug must not stop the service: the firing stays pending for the next sweep
            log.exception("alert %s: delivery failed unexpectedly; it stays pending", firing.id)
        finally:
            if not recording:
                self._in_flight.discard(firing.id)

    def _finish(self, firing: Firing, result: DeliveryResult) -> bool:
        """Hands a firing's final state to the recorder, which writes every firing finished meanwhile at once. It
        stays in flight until written, so no sweep sends it again from the outbox."""
        self._finished[firing.id] = firing.to_document(
            status=DELIVERED if result.delivered else FAILED, attempts=result.attempts,
            delivered_at=bson_time(dt.datetime.now(UTC)) if result.delivered else None, last_error=result.error)
        self._finished_event.set()
        if result.delivered:
            self.delivered += 1
        else:
            self.failed += 1
        return True

    @Service.task
    async def _recording(self) -> None:
        """The finished firings, a batch at a time: one insert into crypto.alerts and one delete from the outbox."""
        while not self.should_stop:
            await self._finished_event.wait()
            self._finished_event.clear()
            try:
                await self._record(dict(self._finished))
            except Exception:  # a bug: logged, and the firings stay in the outbox for the next sweep to send again
                log.exception("alerts: %d finished firings not recorded; they stay pending", len(self._finished))
                for firing_id in list(self._finished):
                    self._in_flight.discard(firing_id)
                self._finished.clear()

    async def _record(self, batch: dict[str, dict]) -> None:
        # MongoDB down: keep trying to record them; if this process ends first the firings are still in the outbox
        # and are sent again after the restart (receivers deduplicate by id).
        async for trying in AsyncRetrying(retry=retry_if_exception_type(StorageError), reraise=True,
                                          wait=wait_exponential_jitter(multiplier=0.5, max=10)):
            with trying:
                await self.store.finish_firings(list(batch.values()))
        for firing_id in batch:
            self._finished.pop(firing_id, None)
            self._in_flight.discard(firing_id)
