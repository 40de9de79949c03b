"""Requires Kafka and MongoDB: the real worker with CRYPTO_SOURCES=coingecko,exchange (a fake CoinGecko and a fake
Binance US) stores both kinds of tick side by side, serves both series, names the unlisted coin once, stops cleanly."""

import copy
import os
import signal
import subprocess

import pytest

from cryptoapp.prices.models import decode_tick
from cryptoapp.schema import tick_id
from testkit.audit import records
from testkit.processes import ROOT, Worker, wait_for
from tests.support.fake_coingecko import FakeCoinGecko, FakeCoinGeckoServer
from tests.support.fake_exchange import FakeBinanceUSServer

pytestmark = pytest.mark.integration
# The fake's books (tests/support/fake_exchange.py): ETH/USD is halted, so ETH is quoted in USDT; no SOL at all.
PAIR = {"BTC": "BTCUSD", "ETH": "ETHUSDT", "BNB": "BNBUSD", "USDT": "USDTUSD", "USDC": "USDCUSD"}
CURRENCY = {"BTC": "usd", "ETH": "usdt", "BNB": "usd", "USDT": "usd", "USDC": "usd"}
SOLANA = {"usd": 187.31, "usd_market_cap": 84512345678.0, "usd_24h_vol": 3123456789.0, "usd_24h_change": 1.5,
          "last_updated_at": 1711356299}


@pytest.fixture(scope="module")
def coingecko():
    fake = FakeCoinGecko()
    fake.prices["solana"] = copy.deepcopy(SOLANA)  # on CoinGecko, not on the exchange
    with FakeCoinGeckoServer(fake) as fake:
        yield fake


@pytest.fixture(scope="module")
def exchange():
    server = FakeBinanceUSServer()
    with server as fake:
        server.call(fake.stream(5))  # five updates a second of every subscribed book: conflated to one
        yield fake


@pytest.fixture(scope="module")
def worker(coingecko, exchange, module_db):
    with Worker(module_db.name, {"CRYPTO_SOURCES": "coingecko,exchange", "COINGECKO_API_URL": coingecko.url,
                          "CRYPTO_EXCHANGE_WS_URL": exchange.ws_url, "CRYPTO_EXCHANGE_REST_URL": exchange.rest_url,
                          "CRYPTO_INTERVAL": "1", "CRYPTO_REQUESTS_PER_MINUTE": "120",
                          "CRYPTO_SYMBOLS": "bitcoin ethereum binancecoin tether usd-coin solana"}) as w:
        yield w


def exchange_docs(db) -> dict:
    """The first stored exchange tick of each coin."""
    docs = {}
    for doc in db.prices.find({"source": "binanceus"}).sort("timestamp", 1):
        docs.setdefault(doc["sensor_id"], doc)
    return docs


def test_both_kinds_of_tick_are_stored_each_with_its_own_id(worker, exchange, module_db):
    wait_for(lambda: module_db.prices.count_documents({"source": "coingecko"}) >= 6, 60, "six CoinGecko documents")
    docs = wait_for(lambda: (lambda d: d if len(d) == 5 else None)(exchange_docs(module_db)), 60,
                    "an exchange tick of each of the five listed coins")
    btc = module_db.prices.find_one({"_id": "BTC_2024-03-25T08:45:00Z"})  # CoinGecko's _id as before
    assert (btc["source"], btc["value"], btc["bid_price"], btc["ask_size"]) == ("coingecko", 67187.3358936566, None, None)
    assert module_db.prices.find_one({"sensor_id": "SOL"})["_id"] == "SOL_2024-03-25T08:44:59Z"
    sent = {(s.symbol, s.event_ms): s for s in list(exchange.sent)}
    for ticker, doc in docs.items():
        quote = sent[(PAIR[ticker], round(doc["timestamp"].timestamp() * 1000))]  # the update it came from
        assert doc["_id"] == tick_id(ticker, doc["timestamp"], "binanceus")  # e.g. BTC_binanceus_2026-...123Z
        assert doc["_id"].startswith(f"{ticker}_binanceus_20") and doc["_id"].endswith("Z")
        assert (doc["value"], doc["bid_price"], doc["ask_price"], doc["bid_size"], doc["ask_size"]) == (
            quote.last, quote.bid, quote.ask, quote.bid_qty, quote.ask_qty)
        assert (doc["volume_24h"], doc["market_cap"], doc["currency"]) == (quote.quote_volume, None, CURRENCY[ticker])
        assert doc["bid_price"] < doc["value"] < doc["ask_price"]
    assert module_db.prices.count_documents({"sensor_id": "SOL", "source": {"$ne": "coingecko"}}) == 0


def test_prices_views_serve_both_series(worker):
    status, body = wait_for(lambda: (lambda r: r if r[0] == 200 and len(r[1] or {}) == 11 else None)(
        worker.get("/prices/")), 60, "/prices/ listing six CoinGecko and five exchange series")
    assert sorted(body) == sorted([*PAIR, "SOL", *(f"{t}_binanceus" for t in PAIR)])
    assert {body[t]["source"] for t in [*PAIR, "SOL"]} == {"coingecko"}
    status, btc = worker.get("/prices/BTC/")
    assert status == 200 and (btc["source"], btc["value"], btc["bid_price"]) == ("coingecko", 67187.3358936566, None)
    status, quote = worker.get("/prices/BTC/?source=binanceus")
    assert status == 200 and (quote["source"], quote["currency"]) == ("binanceus", "usd")
    assert quote["bid_price"] < quote["ask_price"] and quote["bid_size"] > 0
    assert worker.get("/prices/ETH/?source=binanceus")[1]["currency"] == "usdt"
    assert worker.get("/prices/SOL/?source=binanceus")[0] == 404
    assert worker.get("/prices/SOL/")[1]["value"] == SOLANA["usd"]


def test_the_unlisted_coin_is_named_once_and_coingecko_is_neither_repeated_nor_streamed_twice(
        services, worker, coingecko, exchange, module_db):
    polls = len(coingecko.calls_to("/simple/price"))
    wait_for(lambda: len(coingecko.calls_to("/simple/price")) >= polls + 3, 30, "three more polls")
    # CoinGecko's unchanged answers are compared with its own series, not the exchange's newer quotes.
    ticks = [decode_tick(r.value) for r in records(services["kafka"], f"{module_db.name}-prices")]
    assert len([t for t in ticks if t.source == "coingecko"]) == 6
    assert len([t for t in ticks if t.source == "binanceus"]) >= 5
    unlisted = [line for line in worker.log_text().splitlines() if "does not list" in line]
    assert len(unlisted) == 1 and "WARNING" in unlisted[0], unlisted
    assert "binanceus does not list SOL (no SOL pair against USD/USDT); it comes from coingecko only" \
        in unlisted[0]
    # One connection for the tickers, one for the trades (CRYPTO_TRADES, on by default): each opened once.
    assert (exchange.exchange_info_calls, exchange.connections_opened) == (1, 2)
    assert len(coingecko.calls_to("/coins/markets")) == 1  # the coins, resolved once at start-up


def test_sigterm_closes_the_stream_and_exits_0(worker, exchange):
    assert worker.stop(signal.SIGTERM, timeout=30) == 0
    assert exchange.connections == []
    assert "binanceus: stopping the stream (the worker stops)" in worker.log_text()


def test_an_exchange_ccxt_cannot_stream_stops_the_worker_at_start_with_one_line(unique_name):
    result = subprocess.run([str(ROOT / ".venv" / "bin" / "cryptoapp"), "worker", "-l", "info"], cwd=ROOT,
                            env={**os.environ, "CRYPTO_APP_ID": unique_name, "CRYPTO_SOURCES": "coingecko,exchange",
                                 "CRYPTO_EXCHANGE": "binance-us"}, capture_output=True, text=True, timeout=60)
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr.splitlines() == ["cryptoapp: CRYPTO_EXCHANGE='binance-us' is not an exchange ccxt streams: "
                                          "use a ccxt id such as binanceus, kraken or coinbaseexchange"]
