"""The worker's start-up checks against Kafka: it waits for a broker that answers, and stops on a prices topic whose
partition count is not CRYPTO_PARTITIONS."""

from __future__ import annotations

import asyncio
import logging
import os
import time

from aiokafka.admin import AIOKafkaAdminClient
from mode import ServiceT
from tenacity import AsyncRetrying, retry_if_result, wait_exponential

from cryptoapp.logs import Throttle

log = logging.getLogger(__name__)

BROKER_WAIT_LOG_EVERY = 30.0  # seconds between "still waiting" lines while Kafka is down at start


def addresses(urls) -> list[str]:
    """host:port of each broker URL (Kafka's port where the URL has none)."""
    return [f"{u.host}:{u.port or 9092}" for u in urls]


async def kafka_answers(urls) -> bool:
    """True once a broker of `urls` accepts a TCP connection (2 s each)."""
    for url in urls:
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(url.host, url.port or 9092), 2.0)
        except (OSError, asyncio.TimeoutError):
            continue
        writer.close()
        return True
    return False


async def wait_for_kafka(urls, service: ServiceT) -> None:
    """Returns once a broker of `urls` answers, or `service` stops: Faust's producer gives up at once on a broker
    that does not answer, and waiting here lets the worker be started before Kafka (boot order, a broker
    restarting) and go on when it arrives. One line when the wait begins, one every BROKER_WAIT_LOG_EVERY s."""
    where = ", ".join(addresses(urls))
    if await kafka_answers(urls):
        return
    log.warning("Kafka at %s is not reachable: waiting for it (start it with `make services`, or "
                "fix KAFKA_BROKER); the worker goes on as soon as it answers", where)
    started = time.monotonic()
    waiting = Throttle(BROKER_WAIT_LOG_EVERY)
    waiting.mark()  # the line above was the first

    def still_waiting(state) -> None:
        if waiting.check() is not None:
            log.warning("still waiting for Kafka at %s (%.0f s)", where, time.monotonic() - started)

    async for attempt in AsyncRetrying(retry=retry_if_result(lambda answered: not answered),
                                       wait=wait_exponential(multiplier=0.5, max=5.0),
                                       sleep=service.sleep, before_sleep=still_waiting):
        with attempt:
            answered = service.should_stop or await kafka_answers(urls)
        if not attempt.retry_state.outcome.failed:
            attempt.retry_state.set_result(answered)
    if not service.should_stop:
        log.warning("Kafka at %s answers after %.0f s: starting", where, time.monotonic() - started)


async def check_partitions(urls, topic: str, partitions: int) -> None:
    """A prices topic made with another partition count than CRYPTO_PARTITIONS stops the worker with one line:
    its tables' changelogs must match it, and Kafka never shrinks a topic."""
    admin = AIOKafkaAdminClient(bootstrap_servers=addresses(urls))
    try:
        await admin.start()
        # Listed first: describing a topic that does not exist would have the broker create it (one partition).
        if topic not in await admin.list_topics():
            return
        described = await admin.describe_topics([topic])
    except Exception as exc:  # Faust's own start-up reports an unusable broker more precisely
        log.warning("could not read the prices topic's partitions (%r); going on", exc)
        return
    finally:
        await admin.close()
    count = len(described[0].get("partitions") or []) if described and not described[0].get("error_code") else 0
    if count and count != partitions:
        log.critical("the topic %s has %d partitions but CRYPTO_PARTITIONS=%d: set CRYPTO_PARTITIONS=%d (or "
                     "delete the app's topics to start afresh)", topic, count, partitions, count)
        logging.shutdown()
        os._exit(78)
