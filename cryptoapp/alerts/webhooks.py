"""POSTs one firing to its webhook in the rule's format, retrying what may succeed later, until a 2xx or a final no.

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
from typing import Any, Optional

import aiohttp
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_delay, \
    wait_exponential_jitter
from tenacity.wait import wait_base

from cryptoapp import __version__
from cryptoapp.alerts.evaluation import Firing
from cryptoapp.schema import UTC
from cryptoapp.uris import mask_webhook_url

log = logging.getLogger(__name__)

IDEMPOTENCY_HEADER = "Idempotency-Key"
USER_AGENT = f"cryptoapp-alerts/{__version__}"
DISCORD_MAX_CHARS = 2000
RETRYABLE_4XX = {408, 429}
MAX_RETRY_AFTER = 3600.0  # a longer Retry-After (a misconfigured server) is taken as an hour
BODY_SHOWN = 120  # characters of a refusal's body put in the log line


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
