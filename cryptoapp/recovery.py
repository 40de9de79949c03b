"""Two fixes to Faust 0.15's consumer, without which a worker restarted after a crash could lose ticks.

Both were found by a loop of crash-and-restart rounds (tests/integration/test_faults_mongo.py,
docs/reliability.md): now and then a tick was never stored although its offset was committed.

1. Faust hands aiokafka its *live* set of active partitions for a fetch that may wait up to a second.
   When recovery pauses the changelog partitions, that set can be empty while the fetch waits, and
   aiokafka reads an empty set as "every partition": it returns (and counts as consumed) records of
   partitions Faust has paused, which Faust then discards. A fetch now gets a copy of the set.
2. Faust ends a recovery by resuming the stream partitions, awaiting the seek to their committed
   offsets, then resuming its flow control, which empties every stream's queue. Messages fetched in
   between were thrown away after Faust had counted them as read, or marked as a gap and dropped
   when re-fetched. The stream partitions now stay paused through the seek and the clearing and are
   resumed last, so the first message fetched is the one at the committed offset.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from faust.tables import TableManager
from faust.tables.recovery import Recovery
from faust.transport.drivers import aiokafka as faust_kafka


class SnapshotFetchThread(faust_kafka.AIOKafkaConsumerThread):
    async def getmany(self, active_partitions, timeout: float):
        if not active_partitions:  # aiokafka would read "no partitions" as all of them
            return {}
        return await super().getmany(set(active_partitions), timeout)


class SnapshotFetchConsumer(faust_kafka.Consumer):
    def _new_consumer_thread(self) -> faust_kafka.AIOKafkaConsumerThread:
        return SnapshotFetchThread(self, loop=self.loop, beacon=self.beacon)


class KafkaTransport(faust_kafka.Transport):
    """Faust's aiokafka transport (kafka:// URLs) with SnapshotFetchConsumer."""

    Consumer = SnapshotFetchConsumer


@contextlib.contextmanager
def resume_partitions_last(consumer) -> Iterator[None]:
    """Within: `consumer.resume_partitions` only collects partitions; they are resumed when the block ends."""
    resume = consumer.resume_partitions
    held: set = set()
    consumer.resume_partitions = held.update
    try:
        yield
    finally:
        consumer.resume_partitions = resume
        if held:
            resume(held)


class ResumeLastRecovery(Recovery):
    async def _resume_streams(self, generation_id: int = 0) -> None:
        with resume_partitions_last(self.app.consumer):
            await super()._resume_streams(generation_id)

    async def on_recovery_completed(self, generation_id: int = 0) -> None:
        with resume_partitions_last(self.app.consumer):
            await super().on_recovery_completed(generation_id)


class ResumeLastTableManager(TableManager):
    @property
    def recovery(self) -> Recovery:
        if self._recovery is None:
            self._recovery = ResumeLastRecovery(self.app, self, beacon=self.beacon, loop=self.loop)
        return self._recovery
