"""Requires Java and FerretDB/mongod (private Kafka and MongoDB): poison messages go to the dead-letter topic with their reason and bytes; the stream goes on."""

from __future__ import annotations

import json
import time

import pytest
from aiokafka import AIOKafkaProducer
from pymongo import MongoClient

from testkit.audit import in_thread, records
from testkit.processes import wait_for

pytestmark = pytest.mark.integration


def tick(second: int, **fields) -> bytes:
    return json.dumps({"ticker": "BTC", "timestamp": f"2020-01-01T00:00:0{second}Z", "value": 1.0,
                       "source": "poison-test", **fields}).encode()


# (key, value, what the dead letter's reason says); reason None: a valid tick, stored.
MESSAGES = [
    (b"BTC", b"not json at all", "not JSON (JSONDecodeError"),
    (b"BTC", b'{"ticker": 42, "value": "a lot"}', "missing or malformed ticker 42"),
    (None, b'{"value": 1.0, "source": "x", "timestamp": "2020-01-01T00:00:00Z"}', "missing or malformed ticker None"),
    (b"BTC", None, "empty message"),
    (b"BTC", tick(1, value="67000"), "field 'value' is '67000', not a finite number"),
    (b"BTC", tick(2, source="bad \ud800 text"), "not storable as BSON (UnicodeEncodeError"),
    (b"BTC", tick(3, granularity={"$where": "1"}), "MongoDB refused it: code 2"),
    (b"\xff\xfe", tick(4), None),  # a key that is not UTF-8 must not stop anything
]


def produce(bootstrap: str, topic: str, messages) -> list[tuple[int, int]]:
    async def send():
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
        await producer.start()
        try:
            return [(md.partition, md.offset) for md in
                    [await producer.send_and_wait(topic, value, key=key) for key, value, _ in messages]]
        finally:
            await producer.stop()

    return in_thread(send())


def test_poison_goes_to_the_dead_letter_topic_with_reason_and_original_bytes(private_services):
    name = f"faults-poison-{time.strftime('%H%M%S')}"
    client = MongoClient(private_services.mongo_uri, tz_aware=True)
    prices = client[name].prices
    worker = private_services.worker(name, CRYPTO_SOURCE="simulated", CRYPTO_INTERVAL="0.5")
    try:
        worker.start()
        wait_for(lambda: prices.count_documents({}) >= 5, 60, "the first ticks stored")
        positions = produce(private_services.kafka, f"{name}-prices", MESSAGES)
        wait_for(lambda: len(records(private_services.kafka, f"{name}-prices-dlq")) >= 7, 60,
                 "seven dead letters", interval=1.0)
        after_poison = prices.count_documents({})
        wait_for(lambda: prices.count_documents({}) >= after_poison + 10, 30, "the stream going on")
        assert worker.proc.poll() is None
        assert worker.stop() == 0
    finally:
        worker.stop()
        stored_poison = prices.count_documents({"source": {"$ne": "simulated"}})
        weird_key = prices.find_one({"_id": "BTC_poison-test_2020-01-01T00:00:04Z"})  # not CoinGecko: its source in the _id
        client.close()
    letters = {(int(dict(r.headers)["partition"]), int(dict(r.headers)["offset"])): r
               for r in records(private_services.kafka, f"{name}-prices-dlq")}
    for (key, value, reason), position in zip(MESSAGES, positions):
        if reason is None:
            assert position not in letters
            continue
        letter = letters[position]
        headers = {k: v.decode() for k, v in letter.headers}
        assert (letter.key, letter.value) == (key, value)
        assert headers["reason"].startswith(reason), headers["reason"]
        assert headers["topic"] == f"{name}-prices"
    assert len(letters) == 7
    assert weird_key["source"] == "poison-test" and stored_poison == 1
    log = worker.log_text()
    assert log.count("poison message at") == 7 and "Traceback" not in log
