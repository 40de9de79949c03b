"""The sink's own steps on a batch of the prices topic: each message decoded once, the ticks written to the archive
(what cannot become a stored tick parked in the dead-letter topic), and latest_prices updated once per series
(CoinGecko's and an exchange's series never overwrite each other)."""

from __future__ import annotations

import asyncio
import logging
import time

from tenacity import AsyncRetrying, retry_if_exception_type, wait_exponential_jitter

from cryptoapp.metrics import DEAD_LETTERS, WRITE_SECONDS
from cryptoapp.prices.models import InvalidTick, decode_tick
from cryptoapp.schema import one_tick_per_id
from cryptoapp.streams import in_partition_of

log = logging.getLogger(__name__)

DLQ_SEND_TIMEOUT = 30.0  # per try: Faust's producer waits up to 20 min for a broker before it fails


def decode(events) -> tuple[list[tuple], list[tuple]]:
    """The batch's (event, tick) pairs, and its poison as (event, reason)."""
    decoded, poison = [], []
    for event in events:
        try:
            decoded.append((event, decode_tick(event.value)))
        except InvalidTick as exc:
            poison.append((event, str(exc)))
        except Exception as exc:  # a message the parser did not foresee is still poison, not a crash
            poison.append((event, f"unreadable ({exc.__class__.__name__}: {exc})"))
    return decoded, poison


async def dead_letter(topic, event, reason: str) -> None:
    """Park a message that cannot become a stored tick, with the reason and its original bytes.

    Retried until Kafka acknowledges it: the message's offset is committed with its batch.
    """
    message = event.message
    DEAD_LETTERS.inc()
    log.warning("poison message at %s[%d]@%d sent to %s: %s", message.topic, message.partition,
                message.offset, topic.get_topic_name(), reason)
    async for attempt in AsyncRetrying(
        retry=retry_if_exception_type(Exception), wait=wait_exponential_jitter(multiplier=0.5, max=10),
        before_sleep=lambda state: log.warning("dead-letter topic unreachable (%r); retry %d in %.1f s",
                                               state.outcome.exception(), state.attempt_number,
                                               state.upcoming_sleep),
    ):
        with attempt:
            async with asyncio.timeout(DLQ_SEND_TIMEOUT):
                sent = await topic.send(
                    key=message.key, value=message.value,
                    headers={"reason": reason.encode(), "topic": message.topic.encode(),
                             "partition": str(message.partition).encode(), "offset": str(message.offset).encode()})
                await sent


async def archive(store, decoded: list[tuple], poison: list[tuple]) -> list[tuple]:
    """Writes the decoded ticks until stored; those MongoDB refuses join `poison`; returns the stored ones."""
    started = time.perf_counter()
    stored = []
    while decoded:
        result = await store.upsert_until_stored([tick for _, tick in decoded])
        # The store keeps one tick of each _id (schema.one_tick_per_id); when that one is refused, the others with
        # the same _id were not written either and get their own try.
        kept = one_tick_per_id(decoded, tick_of=lambda pair: pair[1])
        last = {tick_id: event for tick_id, (event, _) in kept.items()}
        poison += [(last[tick_id], reason) for tick_id, reason in result.rejected.items()]
        stored += [(event, tick) for event, tick in decoded if tick.tick_id not in result.rejected]
        decoded = [(event, tick) for event, tick in decoded
                   if tick.tick_id in result.rejected and event is not last[tick.tick_id]]
    WRITE_SECONDS.observe(time.perf_counter() - started)
    return stored


def track_latest(table, ticks: list[tuple]) -> None:
    """table[series] = the series' newest tick by source time (series: schema.series_id, BTC for CoinGecko,
    BTC_binanceus for an exchange), written once per series per batch; older ticks change nothing.

    Each entry goes to the partition of its tick's message, keyed by ticker, so all series of one coin live in its
    ticker's partition: views route by ticker."""
    newest: dict[str, tuple] = {}
    for event, tick in ticks:
        held = newest.get(tick.series, (None, table.get(tick.series)))[1]
        if tick.is_newer_than(held):
            newest[tick.series] = (event, tick)
    for series, (event, tick) in newest.items():
        with in_partition_of(event):
            table[series] = tick
