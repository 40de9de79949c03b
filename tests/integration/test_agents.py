"""Requires Kafka and MongoDB: the sink agent driven through Faust's agent.test_context(), in this process, writing
into a database of its own and parking poison in the dead-letter topic."""

import datetime as dt
import uuid

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from pymongo import MongoClient

from cryptoapp.app import app, dead_letters
from cryptoapp.prices.agents import store_ticks
from cryptoapp.prices.models import PriceTick
from cryptoapp.schema import UTC
from cryptoapp.storage import PriceStore
from cryptoapp.testing.audit import records

pytestmark = pytest.mark.integration
T0 = dt.datetime(2025, 11, 21, 10, 0, tzinfo=UTC)


@pytest.fixture()
async def sink(services):
    """The app with its store on a database of this test's own and its producer on the real broker."""
    database = f"agents-{uuid.uuid4().hex[:8]}"
    app.finalize()
    app.flow_control.resume()
    app.store = PriceStore(services["mongo_uri"], database)
    await app.store.start()
    await app.producer.start()
    yield database
    await app.producer.stop()
    await app.store.stop()
    del app.store
    admin = AIOKafkaAdminClient(bootstrap_servers=services["kafka"])
    await admin.start()
    try:
        await admin.delete_topics([t for t in await admin.list_topics() if t.startswith(app.conf.id)])
    finally:
        await admin.close()
    client = MongoClient(services["mongo_uri"])
    client.drop_database(database)
    client.close()


async def test_the_sink_stores_ticks_and_parks_poison_in_the_dead_letter_topic(sink, services):
    tick = PriceTick(ticker="BTC", timestamp=T0, value=87000.0, source="coingecko").encode()
    later = PriceTick(ticker="BTC", timestamp=T0 + dt.timedelta(minutes=1), value=87100.0, source="coingecko").encode()
    assert dead_letters.get_topic_name().startswith("test-session-")  # never a user's topic (tests/conftest.py)
    async with store_ticks.test_context() as agent:
        for value in (tick, b"not json", tick, later):
            await agent.put(key=b"BTC", value=value)
    client = MongoClient(services["mongo_uri"], tz_aware=True)
    stored = {doc["_id"]: doc["value"] for doc in client[sink].prices.find()}
    client.close()
    assert stored == {"BTC_2025-11-21T10:00:00Z": 87000.0, "BTC_2025-11-21T10:01:00Z": 87100.0}
    parked = records(services["kafka"], dead_letters.get_topic_name())
    assert [(r.value, dict(r.headers)["reason"].decode()[:8]) for r in parked] == [(b"not json", "not JSON")]
