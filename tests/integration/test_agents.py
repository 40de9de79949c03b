"""Requires Kafka and MongoDB: the sink agent driven through Faust's agent.test_context(), in this process, writing
into a database of its own: ticks stored, the newest of each series in latest_prices, poison in the dead-letter
topic, and the candles fed (their bars on crypto-candles)."""

import datetime as dt
import json
import uuid

import pytest
from pymongo import MongoClient

from cryptoapp.app import app, dead_letters, latest_prices
from cryptoapp.candles.bars import StoredTick, bars_from_minutes, minutes_from_ticks
from cryptoapp.candles.models import bar_from_json
from cryptoapp.candles.topics import candles_topic
from cryptoapp.pipeline import store_ticks
from cryptoapp.prices.models import PriceTick
from cryptoapp.schema import UTC
from cryptoapp.storage import PriceStore
from testkit.audit import kafka_admin, records

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
    await app.rulebook.start()  # the alert rules (none here) are read before any tick is judged
    await app.producer.start()
    yield database
    await app.producer.stop()
    app._producer = None  # a Faust producer does not start twice: the next test gets a new one
    await app.rulebook.stop()
    await app.store.stop()
    del app.store, app.rulebook
    latest_prices.data.clear()
    async with kafka_admin(services["kafka"]) as admin:
        await admin.delete_topics([t for t in await admin.list_topics() if t.startswith(app.conf.id)])
    client = MongoClient(services["mongo_uri"])
    client.drop_database(database)
    client.close()


def tick(minutes: float, value: float, source: str = "coingecko") -> bytes:
    return PriceTick(ticker="BTC", timestamp=dt.datetime.now(UTC).replace(second=0, microsecond=0) -
                     dt.timedelta(minutes=minutes), value=value, source=source).encode()


async def test_the_sink_stores_keeps_the_newest_parks_poison_and_feeds_the_candles(sink, services):
    assert dead_letters.get_topic_name().startswith("test-session-")  # never a user's topic (tests/conftest.py)
    async with store_ticks.test_context() as agent:
        for value in (tick(3, 87000.0), b"not json", tick(3, 87000.0), tick(1, 87100.0), tick(2, 86000.0),
                      tick(1, 5.0, "binanceus")):
            await agent.put(key=b"BTC", value=value)
    client = MongoClient(services["mongo_uri"], tz_aware=True)
    stored = sorted(doc["value"] for doc in client[sink].prices.find())
    client.close()
    assert stored == [5.0, 86000.0, 87000.0, 87100.0]  # the repeated tick once, the poison never
    assert latest_prices["BTC"].value == 87100.0 and latest_prices["BTC_binanceus"].value == 5.0
    parked = records(services["kafka"], dead_letters.get_topic_name())
    assert [(r.value, dict(r.headers)["reason"].decode()[:8]) for r in parked] == [(b"not json", "not JSON")]
    bars = [json.loads(r.value) for r in records(services["kafka"], candles_topic.get_topic_name())]
    minute_bars = {(b["series"], b["start"]): (b["close"], b["ticks"]) for b in bars if b["resolution"] == "1m"}
    assert sorted(minute_bars.values()) == [(5.0, 1), (86000.0, 1), (87000.0, 1), (87100.0, 1)]


async def test_one_batch_of_many_series_and_minutes_makes_the_bars_the_archive_makes(sink, services):
    # Issue 21's per-batch candles: ticks of three series over four minutes that straddle an hour (so a 1m, 5m, 1h
    # and 1d boundary) arrive in one batch, with a redelivered tick and a late one; every bar's last message on
    # crypto-candles equals the bar the archive's recomputation makes (`cryptoapp candles verify`'s functions).
    hour = (dt.datetime.now(UTC) - dt.timedelta(minutes=10)).replace(minute=0, second=0, microsecond=0)
    values = []
    for i, ticker in enumerate(("ETH", "SOL", "XRP")):  # not the other test's BTC: the app's tables outlive a test
        for k in range(12):
            at = hour - dt.timedelta(minutes=2) + dt.timedelta(seconds=20 * k + i)
            values.append(PriceTick(ticker=ticker, timestamp=at, value=100.0 * (i + 1) + k % 5, source="coingecko"))
    values.append(values[3])                                                     # a redelivery counts once
    values.append(PriceTick(ticker="ETH", timestamp=hour - dt.timedelta(minutes=2, seconds=-1), value=1.0,
                            source="coingecko"))                                 # late: a new low in a past minute
    async with store_ticks.test_context() as agent:
        for tick_ in values:
            await agent.put(key=tick_.ticker.encode(), value=tick_.encode())
    client = MongoClient(services["mongo_uri"], tz_aware=True)
    docs = list(client[sink].prices.find())
    client.close()
    expected = bars_from_minutes(minutes_from_ticks(StoredTick.from_document(d) for d in docs).values())
    sent = {}
    for record in records(services["kafka"], candles_topic.get_topic_name()):
        bar, _ = bar_from_json(json.loads(record.value))
        sent[bar.id] = bar  # the last message of each bar is the one the views keep
    days = 2 if hour.hour == 0 else 1  # the 1d bars: the hour may be midnight
    assert len(docs) == 37 and len(expected) == 3 * (4 + 2 + 2 + days)  # per series: 1m x4, 5m x2, 1h x2, 1d
    assert {i: b for i, b in sent.items() if i in expected} == expected
