"""Requires Kafka and MongoDB: the real worker with CRYPTO_EXCHANGES=binanceus,binance (two fakes of Binance's
protocol, which both ccxt ids speak; the second quotes 5.00 higher) stores each exchange's ticks as its own series and
answers /prices/BTC/best/ with the best bid from one and the best ask from the other; an unknown id is one line."""

import datetime as dt

import pytest

from testkit.processes import Worker, wait_for
from tests.support.fake_coingecko import FakeCoinGecko, FakeCoinGeckoServer
from tests.support.fake_exchange import FakeBinanceUS, FakeBinanceUSServer

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def fakes():
    us_server, world_server = FakeBinanceUSServer(), FakeBinanceUSServer(FakeBinanceUS(price_offset=5.0))
    with FakeCoinGeckoServer(FakeCoinGecko()) as coingecko, us_server as us, world_server as world:
        us_server.call(us.stream(2))  # two updates a second of every subscribed book
        world_server.call(world.stream(2))
        yield coingecko, us, world


@pytest.fixture(scope="module")
def worker(fakes, module_db):
    coingecko, us, world = fakes
    with Worker(module_db.name, {"CRYPTO_SOURCES": "coingecko,exchange", "COINGECKO_API_URL": coingecko.url,
                                 "CRYPTO_EXCHANGES": "binanceus,binance,nosuchexchange",
                                 "CRYPTO_EXCHANGE_WS_URL": us.ws_url, "CRYPTO_EXCHANGE_REST_URL": us.rest_url,
                                 "CRYPTO_EXCHANGE_WS_URL_BINANCE": world.ws_url,
                                 "CRYPTO_EXCHANGE_REST_URL_BINANCE": world.rest_url,
                                 "CRYPTO_INTERVAL": "1", "CRYPTO_SYMBOLS": "bitcoin"}) as w:
        yield w


def test_each_exchange_is_its_own_series_and_best_takes_the_bid_from_one_the_ask_from_the_other(
        worker, fakes, module_db):
    _, us, world = fakes
    docs = wait_for(lambda: (lambda d: d if {"binanceus", "binance"} <= set(d) else None)(
        {doc["source"]: doc for doc in module_db.prices.find({"sensor_id": "BTC", "source": {"$ne": "coingecko"}})}),
        60, "a BTC tick from each exchange")
    assert docs["binanceus"]["_id"].startswith("BTC_binanceus_") and docs["binance"]["_id"].startswith("BTC_binance_")
    assert docs["binance"]["bid_price"] > docs["binanceus"]["ask_price"]  # the fakes' books: crossed by design

    def answered():
        status, body = worker.get("/prices/BTC/best/")
        return body if status == 200 and body["best_bid"] is not None and body["best_ask"] is not None else None
    best = wait_for(answered, 30, "/prices/BTC/best/ with both sides")
    quotes = {q["exchange"]: q for q in best["quotes"]}
    assert set(quotes) == {"binanceus", "binance"}
    assert (best["best_bid_exchange"], best["best_ask_exchange"]) == ("binance", "binanceus")
    sent = {dt.datetime.fromtimestamp(s.event_ms / 1000, dt.timezone.utc).isoformat(): s for s in world.sent}
    assert best["best_bid"] == sent[quotes["binance"]["timestamp"]].bid == quotes["binance"]["bid"]
    sent_us = {dt.datetime.fromtimestamp(s.event_ms / 1000, dt.timezone.utc).isoformat(): s for s in us.sent}
    assert best["best_ask"] == sent_us[quotes["binanceus"]["timestamp"]].ask == quotes["binanceus"]["ask"]
    assert best["spread"] == pytest.approx(best["best_ask"] - best["best_bid"]) and best["spread"] < 0
    assert best["crossed"] is True and best["spread_bps"] < 0
    assert all(0 <= q["age_s"] <= 10 and q["used"] for q in quotes.values())
    unknown = [line for line in worker.log_text().splitlines() if "nosuchexchange" in line and "ERROR" in line]
    assert len(unknown) == 1, unknown
    assert "CRYPTO_EXCHANGES='nosuchexchange' is not an exchange ccxt streams: use a ccxt id such as binanceus" \
           in unknown[0] and "the nosuchexchange stream stays off, the other sources go on" in unknown[0]

