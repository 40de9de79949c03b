"""Faust's table manager with one fix: after recovery, stream partitions resume only once recovery is over.

Faust 0.15 ends a table recovery by resuming the stream partitions, awaiting the seek to their
committed offsets, then resuming its flow control, which empties every stream's queue. Messages
fetched in between were thrown away from those queues after Faust had counted them as read, and
the seek could also reset its read offsets under messages in flight, marking the offsets between
as a gap (acked before any agent saw them) and dropping re-fetched ones as already read. A worker
restarted after a crash lost a tick now and then (tests/integration/test_faults_mongo.py; found in
a loop of crash-and-restart rounds). Here the partitions stay paused through the seek and the
queue clearing and are resumed last, so the first message fetched is the one at the committed offset.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from faust.tables import TableManager
from faust.tables.recovery import Recovery


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
