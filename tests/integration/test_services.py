"""Requires the running Kafka broker and MongoDB server: proves they are real and usable."""

import asyncio
import datetime as dt

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.client import AIOKafkaClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.protocol.admin import ApiVersionRequest
from pymongo import ASCENDING, DESCENDING, AsyncMongoClient

pytestmark = pytest.mark.integration


async def consume(topic, bootstrap, count, deadline_s=30.0):
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                group_id=f"{topic}-reader")
    await consumer.start()
    got = []
    try:
        async with asyncio.timeout(deadline_s):
            while len(got) < count:
                batch = await consumer.getmany(timeout_ms=500)
                for records in batch.values():
                    got.extend((r.key, r.value) for r in records)
    finally:
        await consumer.stop()
    return got


async def test_kafka_produce_and_consume(services, unique_name):
    producer = AIOKafkaProducer(bootstrap_servers=services["kafka"], acks="all")
    await producer.start()
    try:
        for i in range(3):
            await producer.send_and_wait(unique_name, f"tick-{i}".encode(), key=b"BTC")
    finally:
        await producer.stop()
    assert await consume(unique_name, services["kafka"], 3) == [
        (b"BTC", b"tick-0"), (b"BTC", b"tick-1"), (b"BTC", b"tick-2")]


async def test_kafka_compacted_topic(services, unique_name):
    admin = AIOKafkaAdminClient(bootstrap_servers=services["kafka"])
    await admin.start()
    try:
        await admin.create_topics([NewTopic(unique_name, num_partitions=1, replication_factor=1,
                                            topic_configs={"cleanup.policy": "compact"})])
        described = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, unique_name)])
        configs = {name: value for name, value, *_ in described[0].resources[0][4]}
        assert configs["cleanup.policy"] == "compact"
        producer = AIOKafkaProducer(bootstrap_servers=services["kafka"])
        await producer.start()
        try:
            await producer.send_and_wait(unique_name, b"1", key=b"ETH")
            await producer.send_and_wait(unique_name, b"2", key=b"ETH")
        finally:
            await producer.stop()
        assert (await consume(unique_name, services["kafka"], 2))[-1] == (b"ETH", b"2")
    finally:
        await admin.close()


async def test_mongo_round_trip(services, unique_name):
    client = AsyncMongoClient(services["mongo_uri"], serverSelectionTimeoutMS=5000, tz_aware=True)
    try:
        prices = client[unique_name]["prices"]
        t0 = dt.datetime(2025, 11, 21, 10, tzinfo=dt.timezone.utc)
        await prices.insert_one({"_id": "BTC_2025-11-21T10:00:00Z", "sensor_id": "BTC", "timestamp": t0, "value": 1.0})
        for minutes, value in ((1, 2.0), (1, 3.0), (2, 4.0)):  # the second upsert of minute 1 replaces it
            ts = t0 + dt.timedelta(minutes=minutes)
            await prices.update_one({"_id": f"BTC_{ts:%Y-%m-%dT%H:%M:%SZ}"},
                                    {"$set": {"sensor_id": "BTC", "timestamp": ts, "value": value}}, upsert=True)
        name = await prices.create_index([("sensor_id", ASCENDING), ("timestamp", ASCENDING)])
        assert name in [ix["name"] async for ix in await prices.list_indexes()]
        newest_first = await prices.find({"sensor_id": "BTC"}).sort("timestamp", DESCENDING).to_list()
        assert [d["value"] for d in newest_first] == [4.0, 3.0, 1.0]
        assert newest_first[-1]["timestamp"] == t0
    finally:
        await client.drop_database(unique_name)
        await client.close()


async def test_server_versions(services):
    client = AsyncMongoClient(services["mongo_uri"], serverSelectionTimeoutMS=5000)
    try:
        info = await client.admin.command("buildInfo")
    finally:
        await client.close()
    kafka = AIOKafkaClient(bootstrap_servers=services["kafka"])
    await kafka.bootstrap()
    try:
        answer = await kafka.send(kafka.get_random_node(), ApiVersionRequest())
    finally:
        await kafka.close()
    api_versions = {key: (low, high) for key, low, high in answer.api_versions}
    print(f"MongoDB wire server: version {info['version']}"
          f"{', FerretDB ' + info['ferretdbVersion'] if 'ferretdbVersion' in info else ''}")
    print(f"Kafka: {len(api_versions)} APIs, Produce v{api_versions[0][1]}, Fetch v{api_versions[1][1]}")
    assert info["ok"] == 1 and info["version"]
    assert answer.error_code == 0 and api_versions[18][1] >= 3  # Kafka 3.x/4.x answer ApiVersions v3+
