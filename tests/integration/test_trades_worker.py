"""Requires Kafka and MongoDB: the real worker streams a fake Binance US's <symbol>@trade into crypto-trades and makes
true 1 m bars in crypto.candles equal to what the trades say (a trade replayed after a reconnect counted once), and
`cryptoapp candles verify --against-exchange` exits 0 on matching klines and 1 naming the minute that differs."""

import datetime as dt
import time

import pytest

from cryptoapp.schema import UTC, iso_z
from testkit.processes import Worker, wait_for
from tests.support.fake_exchange import FakeBinanceUS, FakeBinanceUSServer

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def server():
    server = FakeBinanceUSServer(FakeBinanceUS(replay_trades=3))  # a resubscription gets the last 3 trades again
    with server:
        yield server


@pytest.fixture(scope="module")
def worker(server, module_db):
    fake = server.fake
    w = Worker(module_db.name, {"CRYPTO_SOURCES": "exchange", "CRYPTO_SYMBOLS": "BTC,ETH",
                                "CRYPTO_EXCHANGE_WS_URL": fake.ws_url, "CRYPTO_EXCHANGE_REST_URL": fake.rest_url,
                                "CRYPTO_INTERVAL": "1", "CRYPTO_FORECASTS": "0"})
    w.start()
    wait_for(lambda: {"btcusd@trade", "ethusdt@trade"} <= fake.subscribed(), 60, "the trade streams subscribed")
    yield w
    w.stop()


def expected_bar(trades):
    ordered = sorted(trades, key=lambda t: (t["T"], t["t"]))
    prices = [float(t["p"]) for t in ordered]
    return {"open": prices[0], "high": max(prices), "low": min(prices), "close": prices[-1], "trades": len(trades),
            "volume": pytest.approx(sum(float(t["q"]) for t in trades)),
            "quote_volume": pytest.approx(sum(float(t["q"]) * float(t["p"]) for t in trades)),
            "provenance": "trades"}


def candle(db, minute_s):
    return db.candles.find_one({"_id": f"BTC_binanceus_1m_{iso_z(dt.datetime.fromtimestamp(minute_s, UTC))}"})


def test_trades_become_true_minute_bars_and_a_replayed_trade_counts_once(server, worker, module_db):
    fake = server.fake
    first = int(time.time()) // 60 * 60 - 180  # three minutes ago: closed at once (grace 5 s)
    ms = first * 1000
    for at, price, qty, maker in [(ms + 1_000, 67000.5, 0.01, False), (ms + 20_000, 67010.0, 0.2, True),
                                  (ms + 20_000, 66990.25, 0.05, False), (ms + 59_999, 67005.0, 0.3, True)]:
        server.call(fake.push_trade("BTCUSD", price, qty, maker, time_ms=at))
    for at, price in [(ms + 60_000, 67020.0), (ms + 61_000, 67030.0)]:
        server.call(fake.push_trade("BTCUSD", price, 0.1, time_ms=at))
    wait_for(lambda: candle(module_db, first + 60), 60, "the second minute's bar in crypto.candles")
    opened = fake.connections_opened
    server.call(fake.drop())  # ccxt dials again, subscribes afresh, and the fake replays the last 3 trades
    wait_for(lambda: fake.connections_opened >= opened + 2 and "btcusd@trade" in fake.subscribed(), 60,
             "the trade stream subscribed again")
    marker = server.call(fake.push_trade("BTCUSD", 67040.0, 0.5, time_ms=ms + 62_000))  # after the replay, in order
    wait_for(lambda: (candle(module_db, first + 60) or {}).get("trades") == 3, 60, "the marker trade in its bar")
    sent = {t["t"]: t for t in fake.trades_sent}  # each trade once, whatever was replayed
    for minute in (first, first + 60):
        doc = candle(module_db, minute)
        mine = [t for t in sent.values() if t["T"] // 60000 * 60 == minute]
        assert {k: doc[k] for k in expected_bar(mine)} == expected_bar(mine), minute
        assert doc["vwap"] == pytest.approx(doc["quote_volume"] / doc["volume"])
    assert candle(module_db, first)["open"] == 67000.5 and candle(module_db, first)["low"] == 66990.25
    assert marker["t"] == candle(module_db, first + 60)["last_trade_id"]
    five = module_db.candles.find_one({"series": "BTC_binanceus", "resolution": "5m"})
    assert five is None or five["provenance"] == "trades"  # closed later; never made from the ticker


def test_verify_against_the_exchange_passes_then_names_the_minute_that_differs(server, worker, module_db):
    fake = server.fake
    wait_for(lambda: module_db.candles.count_documents({"series": "BTC_binanceus", "resolution": "1m"}) >= 2, 60,
             "the trade bars")
    result = worker.command("candles", "verify", "--against-exchange", "--hours", "1")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 complete minutes compared with binanceus's klines over 1 h: 0 mismatches" in result.stdout
    first = min(d["start"] for d in module_db.candles.find({"series": "BTC_binanceus", "resolution": "1m"}))
    first_ms = int(first.replace(tzinfo=UTC).timestamp() * 1000)
    fake.kline_changes[("BTCUSD", first_ms)] = {"h": "67011.00000000"}
    result = worker.command("candles", "verify", "--against-exchange", "--hours", "1")
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stdout.splitlines() == [f"mismatch: BTC_binanceus {iso_z(first.replace(tzinfo=UTC))}: high "
                                          "67010 here, 67011 on binanceus"]
