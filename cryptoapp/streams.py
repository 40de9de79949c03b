"""Batched agents: table writes in the right partition, and batches whose offsets wait until they are written.

Faust puts a table write into the changelog partition of the *current* event (so that a table and the stream
that feeds it stay co-partitioned). A batch from `take_events()` mixes partitions, and its current event is only
the last one; writing every key under its own event keeps each key in its ticker's partition.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import weakref
from collections.abc import Awaitable, Callable, Iterator, Sequence

import faust
from faust.streams import _current_event
from faust.types import EventT

from cryptoapp.app import CHANGELOG_SEGMENT_MS

log = logging.getLogger(__name__)

SHUTDOWN_GRACE = 10.0  # seconds a stopping worker keeps trying to finish its batch before exiting with 70


async def written_before_commit(app, events: Sequence[EventT], write: Callable[[Sequence[EventT]], Awaitable[None]],
                                what: str) -> None:
    """Runs `write(events)`; its offsets may be committed only once it returned.

    Faust acks a batch as the agent's loop unwinds, even on cancellation, and commits after an agent raises: so a
    failure is tried once more now (every write here is idempotent), and a batch that still cannot be written ends
    the process with 70 before any commit, so Kafka redelivers it.
    """
    try:
        await write(events)
    except BaseException as exc:
        if not (app.should_stop or isinstance(exc, asyncio.CancelledError)):
            log.exception("%s: a batch of %d messages failed unexpectedly; trying once more", what, len(events))
        try:
            async with asyncio.timeout(SHUTDOWN_GRACE):
                await write(events)
        except BaseException:
            log.critical("%s: exiting with a batch of %d messages not written (MongoDB unreachable?); their offsets "
                         "stay uncommitted and Kafka redelivers them on restart", what, len(events))
            logging.shutdown()
            os._exit(70)
        if isinstance(exc, asyncio.CancelledError):
            raise


def raw_topic(app, *names: str, declare: bool = True):
    """A topic of raw bytes keyed by ticker, with the prices topic's partitions (the agents parse, so a bad message is
    theirs to park); declare: this app creates it."""
    return app.topic(*names, key_type=bytes, key_serializer="raw", value_type=bytes, value_serializer="raw",
                     partitions=app.settings.partitions, internal=declare)


def state_table(app, name: str, help: str, **kwargs):
    """A table keyed by str with the prices topic's partitions, its changelog rolling a segment a minute: Kafka
    compacts only closed segments (by default after 7 days), so a restart would read back every write since."""
    return app.Table(name, key_type=str, partitions=app.settings.partitions, help=help,
                     extra_topic_configs={"segment.ms": str(CHANGELOG_SEGMENT_MS)}, **kwargs)


async def send_all(messages) -> None:
    """Sends every (topic, key, value) or (topic, key, value, partition) of `messages`, then waits until Kafka
    acknowledged them all: one round trip for the lot instead of one per message."""
    pending = [await message[0].send(key=message[1], value=message[2],
                                     partition=message[3] if len(message) > 3 else None) for message in messages]
    for fut in pending:
        await fut


@contextlib.contextmanager
def in_partition_of(event: EventT) -> Iterator[None]:
    """Table writes inside go to the changelog partition of `event`'s message."""
    token = _current_event.set(weakref.ref(event))
    try:
        yield
    finally:
        _current_event.reset(token)



class AwaitedTable(faust.Table):
    """A table whose writes can be awaited: `await table.written()` returns once Kafka acknowledged every changelog
    message of this table sent so far (and raises what a send raised), so offsets acked afterwards never run ahead
    of the state they produced.

    Faust flushes its producer before it commits (faust/transport/consumer.py `_commit_offsets`), but the flush of
    its own buffer gives up after 0.1 s in which no message left it (faust/transport/producer.py `flush_atmost`):
    on a busy event loop a table write can still wait there when the offsets go, and a crash then would lose state
    whose input Kafka no longer redelivers. Faust drops the future of each write; this table keeps them.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._in_flight: list[asyncio.Future] = []

    def send_changelog(self, *args, **kwargs):
        fut = super().send_changelog(*args, **kwargs)
        self._in_flight.append(fut)
        return fut

    async def written(self) -> None:
        while self._in_flight:
            pending, self._in_flight = self._in_flight, []
            await asyncio.gather(*pending)


class Decoded:
    """A table's JSON values decoded once: `get` decodes a key's value the first time and again only when the table
    holds another value for it (a write replaces the object, so identity says it changed)."""

    def __init__(self, table, decode: Callable[[object], object]):
        self.table, self.decode = table, decode
        self._held: dict[str, tuple[object, object]] = {}

    def get(self, key: str):
        raw = self.table.get(key)
        if raw is None:
            return None
        held = self._held.get(key)
        if held is None or held[0] is not raw:
            held = self._held[key] = (raw, self.decode(raw))
        return held[1]

    def delete(self, key: str) -> None:
        """The key out of the table (if there) and out of the decoded ones."""
        if key in self.table:
            del self.table[key]
        self._held.pop(key, None)

    def clear(self) -> None:
        self._held.clear()
