"""After recovery the worker resumes its stream partitions last (cryptoapp/recovery.py)."""

from __future__ import annotations

from cryptoapp.recovery import resume_partitions_last


class Consumer:
    """Records the calls Faust's recovery makes at its end; nothing else of a consumer."""

    def __init__(self):
        self.calls = []

    def resume_partitions(self, tps):
        self.calls.append(("resume", set(tps)))

    async def perform_seek(self):
        self.calls.append(("seek",))

    def resume_flow(self):
        self.calls.append(("flow",))


async def test_stream_partitions_resume_after_the_seek_and_the_flow():
    consumer = Consumer()
    with resume_partitions_last(consumer):
        consumer.resume_partitions({"prices-0", "prices-1"})  # Faust's order at the end of a recovery
        await consumer.perform_seek()
        consumer.resume_flow()  # after Faust emptied the stream queues
        assert consumer.calls == [("seek",), ("flow",)]  # nothing fetched that a queue clearing could lose
    assert consumer.calls[-1] == ("resume", {"prices-0", "prices-1"})
    consumer.resume_partitions({"prices-2"})  # outside the block: Faust's own behaviour again
    assert consumer.calls[-1] == ("resume", {"prices-2"})


async def test_nothing_is_resumed_when_recovery_resumed_nothing():
    consumer = Consumer()
    with resume_partitions_last(consumer):
        pass  # a new rebalance started: Faust returns before resuming
    assert consumer.calls == []
