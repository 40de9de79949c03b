"""Requires the running MongoDB server: the live tab's best bid and ask across exchanges (AppTest, no browser), on
views built from stored ticks of BTC quoted by two exchanges in USDT and ETH by one."""

import datetime as dt
import time

import pytest
from pymongo import MongoClient

from cryptoapp import schema
from dashboard import formatting
from tests.e2e import seeding
from tests.support.pages import app_page

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def two_exchanges(services):
    client = MongoClient(services["mongo_uri"], tz_aware=True, serverSelectionTimeoutMS=5000)
    name = f"test-dash-best-{int(time.time() * 1000) % 10**10}"
    t = dt.datetime.now(dt.timezone.utc)
    # kraken quotes BTC 50 higher: its bid is the best, binanceus's ask the best, and the book is crossed.
    docs = (seeding.exchange(t, hours=0.02, step_s=5) + seeding.exchange(t, hours=0.02, step_s=5, seed=3, source="kraken",
                                                                         price=seeding.COINS["BTC"][0] + 50)
            + seeding.exchange(t, ticker="ETH", hours=0.02, step_s=5))
    seeding.seed_views(client[name], services["mongo_uri"], docs)
    yield services["mongo_uri"], name, docs
    client.drop_database(name)
    client.close()


def newest(docs, series):
    return max((d for d in docs if schema.series_id(d["sensor_id"], d["source"]) == series), key=lambda d: d["timestamp"])


def test_the_live_tab_shows_the_best_bid_and_ask_across_exchanges(two_exchanges, monkeypatch):
    uri, name, docs = two_exchanges
    monkeypatch.setenv("MONGO_URI", uri)
    monkeypatch.setenv("MONGO_DB", name)
    at = app_page()
    tables = [d for d in at.dataframe if list(d.value.columns)[:2] == ["Coin", "Best bid"]]
    assert len(tables) == 1
    table = tables[0].value
    assert list(table["Coin"]) == ["BTC (USDT)"]  # ETH has one exchange only: no row
    us, kraken = newest(docs, "BTC_binanceus"), newest(docs, "BTC_kraken")
    row = table.iloc[0]
    assert (row["Best bid"], row["Bid on"]) == (formatting.price(kraken["bid_price"], "usdt"), "kraken")
    assert (row["Best ask"], row["Ask on"]) == (formatting.price(us["ask_price"], "usdt"), "binanceus")
    spread = us["ask_price"] - kraken["bid_price"]
    assert spread < 0 and row["Spread"] == formatting.spread(
        spread, spread / ((us["ask_price"] + kraken["bid_price"]) / 2) * 10_000, "usdt") + " (crossed)"
    assert row["Quotes (age)"].startswith("binanceus ") and ", kraken " in row["Quotes (age)"]
    assert "left out" not in row["Quotes (age)"]
