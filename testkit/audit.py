"""What Kafka acknowledged beside what MongoDB and the dead-letter topic hold: reads a topic end to end and
compares it with the stored ticks (the fault tests and `make chaos` judge a run by it)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from concurrent.futures import ThreadPoolExecutor
from collections.abc import AsyncIterator
from typing import Optional

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from cryptoapp.prices.models import PriceTick, decode_tick
from cryptoapp.storage import PriceStore


@contextlib.asynccontextmanager
async def kafka_admin(bootstrap: str) -> AsyncIterator[AIOKafkaAdminClient]:
    """`async with kafka_admin(bootstrap) as admin:` a started admin client, closed when the block ends."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        yield admin
    finally:
        await admin.close()


async def partitions_of(bootstrap: str, topic: str) -> list[TopicPartition]:
    async with kafka_admin(bootstrap) as admin:
        (described,) = await admin.describe_topics([topic])
    return [TopicPartition(topic, p["partition"]) for p in described["partitions"]]


async def read_topic(bootstrap: str, topic: str) -> list:
    """Every record of `topic`, all partitions, from the first offset to the end offset at call time."""
    partitions = await partitions_of(bootstrap, topic)
    if not partitions:
        return []
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                request_timeout_ms=30000, fetch_max_bytes=16 * 1024 * 1024)
    await consumer.start()
    try:
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        end = await consumer.end_offsets(partitions)
        records = []
        async with asyncio.timeout(120):
            while [tp for tp in partitions if await consumer.position(tp) < end[tp]]:
                for batch in (await consumer.getmany(timeout_ms=1000)).values():
                    records.extend(r for r in batch if r.offset < end[TopicPartition(r.topic, r.partition)])
        return records
    finally:
        await consumer.stop()


@dataclasses.dataclass
class Audit:
    """What Kafka acknowledged beside what MongoDB and the dead-letter topic hold."""

    messages: int = 0                 # records in the prices topic: each one was acknowledged by Kafka
    tick_ids: set = dataclasses.field(default_factory=set)    # distinct valid ticks among them
    positions: dict = dataclasses.field(default_factory=dict)  # tick id -> its (partition, offset)s
    kafka_repeats: int = 0            # records whose tick was already in the topic (producer retries)
    poison: set = dataclasses.field(default_factory=set)      # (partition, offset) of records that are not ticks
    newest: dict = dataclasses.field(default_factory=dict)    # ticker -> newest source time in the topic
    dlq_entries: int = 0              # records in the dead-letter topic
    parked: set = dataclasses.field(default_factory=set)      # (partition, offset) of the originals they name
    dlq_intact: bool = True           # every dead letter carries a reason and its original bytes
    documents: int = 0
    doc_ids: set = dataclasses.field(default_factory=set)
    observations: int = 0             # distinct (sensor_id, timestamp) among the documents
    committed: dict = dataclasses.field(default_factory=dict)  # partition -> the consumer group's committed offset

    @property
    def missing(self) -> set:
        """Acknowledged ticks neither stored nor parked in the dead-letter topic (MongoDB refused them)."""
        return {i for i in self.tick_ids - self.doc_ids if not self.positions[i] & self.parked}

    @property
    def committed_unstored(self) -> set:
        """Missing ticks whose offsets the worker committed: the one loss a restart cannot repair."""
        return {i for i in self.missing if all(o < self.committed.get(p, 0) for p, o in self.positions[i])}

    @property
    def invented(self) -> set:
        return self.doc_ids - self.tick_ids

    @property
    def duplicates(self) -> int:
        return self.documents - self.observations

    @property
    def unparked(self) -> set:
        return self.poison - self.parked

    @property
    def ok(self) -> bool:
        return not (self.missing or self.invented or self.duplicates or self.unparked) and self.dlq_intact

    def figures(self) -> dict:
        return {"acknowledged_messages": self.messages, "acknowledged_ticks": len(self.tick_ids),
                "kafka_repeats": self.kafka_repeats, "documents": self.documents,
                "distinct_observations": self.observations, "missing": len(self.missing),
                "committed_unstored": len(self.committed_unstored),
                "invented": len(self.invented), "duplicates": self.duplicates,
                "poison_in_topic": len(self.poison), "dlq_entries": self.dlq_entries,
                "dlq_distinct": len(self.parked), "unparked": len(self.unparked), "dlq_intact": self.dlq_intact}


async def committed_offsets(bootstrap: str, group: str, topic: str) -> dict[int, int]:
    async with kafka_admin(bootstrap) as admin:
        offsets = await admin.list_consumer_group_offsets(group)
    return {tp.partition: meta.offset for tp, meta in offsets.items() if tp.topic == topic}


async def audit(bootstrap: str, topic: str, mongo_uri: str, database: str, group: Optional[str] = None) -> Audit:
    """Reads the prices topic, its dead-letter topic and the collection, and compares them.

    `group` (the worker's app id) adds its committed offsets, to tell unstored ticks that a restart
    re-reads from ones it would skip.
    """
    result = Audit()
    if group:
        result.committed = await committed_offsets(bootstrap, group, topic)
    for record in await read_topic(bootstrap, topic):
        result.messages += 1
        try:
            tick = decode_tick(record.value)
        except ValueError:
            result.poison.add((record.partition, record.offset))
            continue
        if tick.tick_id in result.tick_ids:
            result.kafka_repeats += 1
        result.tick_ids.add(tick.tick_id)
        result.positions.setdefault(tick.tick_id, set()).add((record.partition, record.offset))
        result.newest[tick.ticker] = max(result.newest.get(tick.ticker, tick.timestamp), tick.timestamp)
    for record in await read_topic(bootstrap, f"{topic}-dlq"):
        result.dlq_entries += 1
        headers = {k: v.decode() for k, v in record.headers}
        result.parked.add((int(headers.get("partition", -1)), int(headers.get("offset", -1))))
        result.dlq_intact &= bool(headers.get("reason")) and headers.get("topic") == topic
    async with PriceStore(mongo_uri, database) as store:
        pairs = set()
        async for doc in store.ticks.documents({"sensor_id": 1, "timestamp": 1}):
            result.documents += 1
            result.doc_ids.add(doc["_id"])
            pairs.add((doc["sensor_id"], doc["timestamp"]))
        result.observations = len(pairs)
    return result


async def uncommitted(bootstrap: str, group: str, topic: str) -> int:
    """Records of `topic` that consumer group `group` has not committed yet. A Faust worker commits an offset
    once every agent reading the topic is done with its record: 0 means everything in it was processed."""
    committed = await committed_offsets(bootstrap, group, topic)
    partitions = await partitions_of(bootstrap, topic)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        ends = await consumer.end_offsets(partitions) if partitions else {}
    finally:
        await consumer.stop()
    return sum(max(0, end - max(0, committed.get(tp.partition, 0))) for tp, end in ends.items())


async def publish(bootstrap: str, topic: str, ticks: list[PriceTick], **producer_options) -> float:
    """Sends ticks as the worker's publish() does (key = ticker, value = the tick's JSON); returns once acked, with
    the seconds from the first send until the producer stopped."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", **producer_options)
    await producer.start()
    started = time.perf_counter()
    try:
        pending = [await producer.send(topic, key=t.ticker.encode(), value=t.encode()) for t in ticks]
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return time.perf_counter() - started


def in_thread(coro):
    """Runs a coroutine from synchronous code, on an event loop of its own in a thread of its own (the caller
    may have a loop running); returns its result."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def records(bootstrap: str, topic: str) -> list:
    """read_topic() from synchronous code: on an event loop of its own, in a thread of its own (the caller
    may have a loop running)."""
    return in_thread(read_topic(bootstrap, topic))
