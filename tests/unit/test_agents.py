"""The sink agent's rules through Faust's agent.test_context(), with the app's memory store and no server: the newest
tick of each series wins latest_prices, and poison changes nothing."""

import datetime as dt

import pytest

from cryptoapp.app import app, latest_prices
from cryptoapp.prices.sink import track_latest
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


def tick(ticker: str, minutes: float, value: float, source: str = "coingecko") -> PriceTick:
    return PriceTick(ticker=ticker, timestamp=T0 + dt.timedelta(minutes=minutes), value=value, source=source)


async def test_latest_prices_keeps_each_series_newest_tick_by_source_time(agents):
    # track_latest is what the sink calls with each stored batch; a test agent gives it real events to write under.
    batches = [[tick("BTC", 0, 87000.0), tick("BTC", 2, 87100.0)],
               [tick("BTC", 1, 86000.0), tick("ETH", 0, 2900.0)],       # late: a redelivery or a backfill
               [tick("BTC", 2, 87150.0), tick("BTC", 3, 1.0, "binanceus")]]  # same time: the later answer wins

    @app.agent()
    async def feeder(stream):
        async for event in stream.events():
            track_latest(latest_prices, [(event, tick) for tick in batches.pop(0)])

    async with feeder.test_context() as agent:
        await agent.put(key=b"BTC", value=b"1")
        assert latest_prices["BTC"].value == 87100.0
        await agent.put(key=b"BTC", value=b"2")
        assert latest_prices["BTC"].value == 87100.0 and latest_prices["ETH"].value == 2900.0
        await agent.put(key=b"BTC", value=b"3")
        assert latest_prices["BTC"].value == 87150.0
        assert latest_prices["BTC_binanceus"].value == 1.0  # an exchange's series never overwrites CoinGecko's
