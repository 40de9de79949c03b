"""Delivers stored firings to their webhooks, off the price stream: POST with retries, at least once.

The outbox is crypto.alert_outbox: a firing is stored there (status `pending`) before any POST, and only
a 2xx answer (or a final refusal) moves it into crypto.alerts, as `delivered` (or `failed`). A worker that
dies in between finds it in the outbox when it starts again and sends it again; receivers deduplicate on
the firing id (the `Idempotency-Key` header, and `id` in the JSON payload). A webhook that fails or hangs only delays its own firings: the price agents hand
firings over with `submit()`, which never waits.

The JSON payload (format `json`), one object per firing:
    {"id": "3f9a2c1b_BTC_2025-11-21T10:00:00Z", "rule_id": "3f9a2c1b", "coin": "BTC", "kind": "above",
     "rule": "BTC above 100,000 USD", "threshold": 100000.0, "unit": "USD", "observed": 100523.1,
     "reference": null, "reference_at": null, "window_s": null, "band": 500.0,
     "tick_id": "BTC_2025-11-21T10:00:00Z",
     "tick": {"timestamp": "2025-11-21T10:00:00Z", "value": 100523.1, "currency": "usd", "source": "coingecko",
              "bid_price": null, "ask_price": null, "volume_24h": 31260929299.5},
     "fired_at": "2025-11-21T10:00:01.204Z", "text": "BTC above 100,000 USD: 100,523.1 USD at ..."}
Format `slack` sends {"text": "<text>"} (Slack incoming webhooks, also Mattermost); `discord` sends
{"content": "<text>"} (Discord webhooks; at most 2,000 characters). Every POST carries the headers
`Idempotency-Key: <id>` and `User-Agent: cryptoapp-alerts/<version>`.

Retries: timeouts, connection errors, HTTP 408, 429 and 5xx, with jittered exponential backoff capped at
`max_backoff`, or after the server's Retry-After (seconds or an HTTP date, at most an hour); until
`give_up_after` seconds have passed. Any other 4xx, and a redirect, is final: logged in one line,
stored as `failed` with the reason.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import email.utils
import logging
import os
import socket
from typing import Any, Optional

import aiohttp
from mode import Service
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_delay, \
    wait_exponential_jitter
from tenacity.wait import wait_base

from cryptoapp import __version__
from cryptoapp.alerts.evaluation import DELIVERED, FAILED, Firing
from cryptoapp.schema import UTC, bson_time
from cryptoapp.storage import StorageError
from cryptoapp.uris import mask_webhook_url

log = logging.getLogger(__name__)

IDEMPOTENCY_HEADER = "Idempotency-Key"
USER_AGENT = f"cryptoapp-alerts/{__version__}"
DISCORD_MAX_CHARS = 2000
RETRYABLE_4XX = {408, 429}
MAX_RETRY_AFTER = 3600.0  # a longer Retry-After (a misconfigured server) is taken as an hour
BODY_SHOWN = 120  # characters of a refusal's body put in the log line
LEASE_SWEEPS = 3  # a firing's owner keeps it this many sweep intervals without renewing (one or two may fail)


class DeliveryFailed(Exception):
    """A try that may succeed later (timeout, connection error, 408, 429, 5xx); `retry_after` in seconds
    when the server said when to come back."""

    def __init__(self, message: str, retry_after: Optional[float] = None):
        super().__init__(message)
        self.retry_after = retry_after


class DeliveryRefused(Exception):
    """The receiver refused the firing for good (a 4xx other than 408/429, or a redirect); never retried."""


@dataclasses.dataclass
class DeliveryResult:
    delivered: bool
    attempts: int
    error: Optional[str] = None


def payload(firing: Firing) -> dict[str, Any]:
    """The body POSTed for the firing's format (module docstring)."""
    if firing.format == "slack":
        return {"text": firing.text}
    if firing.format == "discord":
        return {"content": firing.text[:DISCORD_MAX_CHARS]}
    body = firing.to_json()
    del body["webhook"], body["format"]  # the receiver knows its own URL; it holds a secret
    body["text"] = firing.text
    return body


def headers(firing: Firing) -> dict[str, str]:
    return {IDEMPOTENCY_HEADER: firing.id, "User-Agent": USER_AGENT}


def retry_after_seconds(value: Optional[str], now: Optional[dt.datetime] = None) -> Optional[float]:
    """Retry-After as seconds from now: a number of seconds, or an HTTP date; None when absent or unreadable."""
    if value is None:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # RFC 9110 dates are GMT; a "-0000" zone parses as naive
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or dt.datetime.now(UTC))).total_seconds())


async def post_once(session: aiohttp.ClientSession, firing: Firing, timeout: float) -> int:
    """One POST of the firing to its webhook; the 2xx status, or DeliveryFailed / DeliveryRefused."""
    where = mask_webhook_url(firing.webhook)
    try:
        async with session.post(firing.webhook, json=payload(firing), headers=headers(firing),
                                allow_redirects=False, timeout=aiohttp.ClientTimeout(total=timeout)) as resp:
            body = (await resp.content.read(BODY_SHOWN)).decode(errors="replace").strip()
            if 200 <= resp.status < 300:
                return resp.status
            if resp.status in RETRYABLE_4XX or resp.status >= 500:
                raise DeliveryFailed(f"{where} answered HTTP {resp.status}",
                                     retry_after_seconds(resp.headers.get("Retry-After")))
            if 300 <= resp.status < 400:
                raise DeliveryRefused(f"{where} answered a redirect (HTTP {resp.status}) to "
                                      f"{mask_webhook_url(resp.headers.get('Location'))!r}: set the rule's "
                                      "webhook to the final URL")
            raise DeliveryRefused(f"{where} refused it with HTTP {resp.status}"
                                  + (f" ({' '.join(body.split())})" if body else "")
                                  + ": check the rule's webhook URL and format")
    except asyncio.TimeoutError:
        raise DeliveryFailed(f"{where} did not answer within {timeout:g} s") from None
    except aiohttp.ClientError as exc:
        raise DeliveryFailed(f"{where} unreachable ({exc.__class__.__name__})") from None


class wait_retry_after(wait_base):
    """The server's Retry-After when it gave one (at most `cap` s), otherwise the `fallback` wait.

    Not capped by the backoff's maximum: a server that says when to come back is asked no earlier."""

    def __init__(self, fallback: wait_base, cap: float):
        self.fallback = fallback
        self.cap = cap

    def __call__(self, retry_state: RetryCallState) -> float:
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        told = getattr(exc, "retry_after", None)
        return min(told, self.cap) if told is not None else self.fallback(retry_state)


async def deliver(session: aiohttp.ClientSession, firing: Firing, *, timeout: float = 10.0,
                  initial_backoff: float = 1.0, max_backoff: float = 300.0, give_up_after: float = 86400.0,
                  slot: Optional[asyncio.Semaphore] = None) -> DeliveryResult:
    """POSTs until a 2xx, a final refusal or `give_up_after` seconds; `slot` bounds concurrent POSTs
    (a retry waits its backoff without holding one)."""
    attempts = 0

    async def attempt() -> None:
        nonlocal attempts
        attempts += 1
        if slot is None:
            await post_once(session, firing, timeout)
        else:
            async with slot:
                await post_once(session, firing, timeout)

    def before_sleep(state: RetryCallState) -> None:
        log.warning("alert %s: %s; try %d again in %.1f s", firing.id, state.outcome.exception(),
                    state.attempt_number + 1, state.upcoming_sleep)

    try:
        async for trying in AsyncRetrying(
            retry=retry_if_exception_type(DeliveryFailed), reraise=True, before_sleep=before_sleep,
            stop=stop_after_delay(give_up_after),
            wait=wait_retry_after(wait_exponential_jitter(multiplier=initial_backoff, max=max_backoff,
                                                          jitter=initial_backoff), cap=MAX_RETRY_AFTER),
        ):
            with trying:
                await attempt()
    except DeliveryRefused as exc:
        log.warning("alert %s not delivered: %s", firing.id, exc)
        return DeliveryResult(False, attempts, str(exc))
    except DeliveryFailed as exc:
        log.warning("alert %s not delivered after %d tries in %.0f s: %s", firing.id, attempts, give_up_after, exc)
        return DeliveryResult(False, attempts, f"gave up after {attempts} tries: {exc}")
    return DeliveryResult(True, attempts)


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
        self._in_flight: set[str] = set()  # ids queued or being delivered by this process
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
        try:
            result = await deliver(self.session, firing, timeout=self.timeout, slot=self._slot, **self.backoff)
            await self._record(firing, result)
        except asyncio.CancelledError:
            raise  # stopping: it stays pending and the next start sends it
        except Exception:  # a bug must not stop the service: the firing stays pending for the next sweep
            log.exception("alert %s: delivery failed unexpectedly; it stays pending", firing.id)
        finally:
            self._in_flight.discard(firing.id)

    async def _record(self, firing: Firing, result: DeliveryResult) -> None:
        # MongoDB down: keep trying to record it; if this process ends first the firing is still in the outbox
        # and is sent again after the restart (receivers deduplicate by id).
        final = firing.to_document(status=DELIVERED if result.delivered else FAILED, attempts=result.attempts,
                                   delivered_at=bson_time(dt.datetime.now(UTC)) if result.delivered else None,
                                   last_error=result.error)
        async for trying in AsyncRetrying(retry=retry_if_exception_type(StorageError), reraise=True,
                                          wait=wait_exponential_jitter(multiplier=0.5, max=10)):
            with trying:
                await self.store.finish_firing(final)
        if result.delivered:
            self.delivered += 1
        else:
            self.failed += 1
