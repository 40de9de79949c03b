"""The latest_prices agent driven through Faust's agent.test_context() with a memory store: newest wins, poison is skipped."""

import datetime as dt

import pytest

from cryptoapp.app import app, latest_prices
from cryptoapp.prices.agents import track_latest
from cryptoapp.prices.models import PriceTick
from cryptoapp.schema import UTC

T0 = dt.datetime(2025, 11, 21, 10, 0, tzinfo=UTC)


@pytest.fixture()
def agents():
    app.finalize()
    assert app.conf.store.scheme == "memory"  # the app's own store: tables live in memory, their changelog in Kafka
    app.flow_control.resume()
    yield app
    latest_prices.data.clear()


def message(ticker: str, minutes: float, value: float, source: str = "coingecko") -> bytes:
    return PriceTick(ticker=ticker, timestamp=T0 + dt.timedelta(minutes=minutes), value=value, source=source).encode()


async def test_latest_prices_keeps_the_newest_tick_by_source_time(agents):
    async with track_latest.test_context() as agent:
        await agent.put(key=b"BTC", value=message("BTC", 0, 87000.0))
        await agent.put(key=b"BTC", value=message("BTC", 2, 87100.0))
        await agent.put(key=b"BTC", value=message("BTC", 1, 86000.0))  # late: a redelivery or a backfill
        await agent.put(key=b"ETH", value=message("ETH", 0, 2900.0))
        assert latest_prices["BTC"].value == 87100.0 and latest_prices["BTC"].timestamp == T0 + dt.timedelta(minutes=2)
        assert latest_prices["ETH"].value == 2900.0
        await agent.put(key=b"BTC", value=message("BTC", 2, 87150.0))  # same source time: the later answer wins
        assert latest_prices["BTC"].value == 87150.0


async def test_poison_changes_nothing_and_the_stream_goes_on(agents):
    async with track_latest.test_context() as agent:
        await agent.put(key=b"BTC", value=message("BTC", 0, 87000.0))
        for poison in (b"not json", b'{"ticker": "btc", "value": 1}', b'{"ticker": "BTC", "value": -5, "source": "x",'
                       b' "timestamp": "2025-11-21T11:00:00Z"}', b"\xff\xfe", None):
            await agent.put(key=b"BTC", value=poison)
        assert latest_prices["BTC"].value == 87000.0
        await agent.put(key=b"BTC", value=message("BTC", 5, 87500.0))
        assert latest_prices["BTC"].value == 87500.0


async def test_coingecko_and_an_exchange_keep_a_series_each(agents):
    async with track_latest.test_context() as agent:
        await agent.put(key=b"BTC", value=message("BTC", 0, 87000.0))
        await agent.put(key=b"BTC", value=message("BTC", 1, 87010.5, source="binanceus"))
        await agent.put(key=b"BTC", value=message("BTC", 0.5, 86990.0, source="binanceus"))  # older: ignored
        await agent.put(key=b"BTC", value=message("BTC", 0.2, 87020.0, source="coingecko-backfill"))  # CoinGecko's
        assert (latest_prices["BTC"].value, latest_prices["BTC"].source) == (87020.0, "coingecko-backfill")
        assert (latest_prices["BTC_binanceus"].value, latest_prices["BTC_binanceus"].source) == (87010.5, "binanceus")
        assert sorted(latest_prices.keys()) == ["BTC", "BTC_binanceus"]
