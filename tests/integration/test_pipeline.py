"""Requires Kafka and MongoDB: the real worker (a subprocess) polls a fake CoinGecko and stores every tick."""

import datetime as dt
import os
import urllib.request

import pytest
from pymongo import MongoClient

from testkit.audit import records
from testkit.processes import Worker, wait_for
from tests.support.databases import dropped_after
from tests.support.fake_coingecko import FakeCoinGecko, FakeCoinGeckoServer

pytestmark = pytest.mark.integration
UTC = dt.timezone.utc
TICKERS = ["BNB", "BTC", "ETH", "USDC", "USDT"]


@pytest.fixture(scope="module")
def fake():
    with FakeCoinGeckoServer(FakeCoinGecko()) as fake:
        yield fake


@pytest.fixture(scope="module")
def db(services):
    with dropped_after(services["mongo_uri"], f"pipeline-{os.getpid()}-{dt.datetime.now(UTC):%H%M%S%f}") as database:
        yield database


@pytest.fixture(scope="module")
def worker(fake, db):
    with Worker(db.name, {"COINGECKO_API_URL": fake.url, "COINGECKO_API_KEY": "demo-key-123",
                          "CRYPTO_INTERVAL": "1", "CRYPTO_SYMBOLS": "bitcoin ethereum BNB tether usd-coin"}) as w:
        yield w


def test_every_coin_is_stored_field_by_field(worker, db):
    wait_for(lambda: db.prices.count_documents({}) >= 5, 60, "five documents in MongoDB")
    btc = db.prices.find_one({"sensor_id": "BTC"})
    inserted_at = btc.pop("inserted_at")
    assert btc == {
        "_id": "BTC_2024-03-25T08:45:00Z",
        "timestamp": dt.datetime(2024, 3, 25, 8, 45, tzinfo=UTC),  # CoinGecko's last_updated_at 1711356300
        "value": 67187.3358936566,
        "sensor_id": "BTC",
        "bid_price": None,
        "ask_price": None,
        "bid_size": None,
        "ask_size": None,
        "volume_24h": 31260929299.52484,
        "change_24h_pct": 3.637278946773539,
        "market_cap": 1317802988326.2493,
        "currency": "usd",
        "source": "coingecko",
    }
    assert abs(dt.datetime.now(UTC) - inserted_at) < dt.timedelta(minutes=2)
    assert sorted(db.prices.distinct("sensor_id")) == TICKERS
    usdc = db.prices.find_one({"sensor_id": "USDC"})
    assert usdc["_id"] == "USDC_2024-03-25T08:44:48Z" and usdc["change_24h_pct"] == -0.0034
    assert "sensor_id_timestamp" in db.prices.index_information()


def test_web_views_serve_the_latest_prices(worker):
    status, body = wait_for(lambda: (lambda r: r if r[0] == 200 and len(r[1]) == 5 else None)(worker.get("/prices/")),
                            60, "/prices/ listing five coins")
    assert sorted(body) == TICKERS
    status, btc = worker.get("/prices/BTC/")
    assert status == 200
    assert btc["value"] == 67187.3358936566 and btc["timestamp"] == "2024-03-25T08:45:00Z"
    assert btc["source"] == "coingecko" and btc["bid_price"] is None
    assert worker.get("/prices/DOGE/") == (404, {"error": "no price for DOGE yet: is it in CRYPTO_SYMBOLS?"})
    status, body = worker.get("/prices/bad%24tick/")
    assert status == 404 and "malformed ticker" in body["error"]
    assert worker.get("/table/latest_prices/")[1]["name"] == "latest_prices"  # Faust's own table views
    status, entry = worker.get("/table/latest_prices/BTC/")
    assert status == 200 and entry["value"] == 67187.3358936566


def test_metrics_count_what_the_worker_did(worker, db):
    # Faust's messages and events are counted per batch (cryptoapp/sensors.py), under Faust's own names.
    wait_for(lambda: db.prices.count_documents({}) >= 5, 60, "five documents in MongoDB")

    def metrics() -> dict[str, float]:
        with urllib.request.urlopen(f"http://127.0.0.1:{worker.port}/metrics", timeout=5) as resp:
            text = resp.read().decode()
        return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                if line and not line.startswith("#")}

    seen = wait_for(lambda: (lambda m: m if m.get("cryptoapp_ticks_stored_total", 0) >= 5 else None)(metrics()),
                    30, "/metrics counting the stored ticks")
    assert seen["faust_messages_received_total"] >= 5 and seen["faust_total_events_total"] >= 5
    topic = next(k for k in seen if k.startswith("faust_messages_received_per_topic_total{") and "-prices" in k)
    assert seen[topic] >= 5
    assert any(k.startswith("faust_table_operations_total{") and "latest_prices" in k for k in seen)


def test_one_call_per_interval_for_all_coins(worker, fake):
    before = len(fake.calls_to("/simple/price"))
    wait_for(lambda: len(fake.calls_to("/simple/price")) >= before + 3, 30, "three more polls")
    for call in fake.calls_to("/simple/price"):
        assert call.params == {
            "ids": "bitcoin,ethereum,binancecoin,tether,usd-coin", "vs_currencies": "usd",
            "include_market_cap": "true", "include_24hr_vol": "true", "include_24hr_change": "true",
            "include_last_updated_at": "true", "precision": "full"}
        assert call.headers["x-cg-demo-api-key"] == "demo-key-123"


def test_an_unchanged_answer_is_neither_stored_nor_published_again(services, worker, fake, db):
    polls = len(fake.calls_to("/simple/price"))
    wait_for(lambda: len(fake.calls_to("/simple/price")) >= polls + 3, 30, "three polls of an unchanged answer")
    assert db.prices.count_documents({}) == 5
    assert len(records(services["kafka"], f"{db.name}-prices")) == 5  # one message per observation


def test_restart_restores_the_table_from_kafka_and_loses_nothing(worker, fake, db):
    fake.prices["bitcoin"] = {**fake.prices["bitcoin"], "usd": 67300.5, "last_updated_at": 1711356360}
    wait_for(lambda: db.prices.find_one({"_id": "BTC_2024-03-25T08:46:00Z"}), 30, "the newer BTC tick stored")
    wait_for(lambda: worker.price("BTC") == 67300.5, 30, "the table moving to the newer tick")
    assert worker.stop() == 0
    fake.fault = "503"  # every fetch fails until reset: whatever is served comes from Kafka
    try:
        worker.start()
        status, btc = wait_for(lambda: (lambda r: r if r[0] == 200 else None)(worker.get("/prices/BTC/")), 60,
                               "/prices/BTC/ served after the restart (503 while the table recovers)")
        assert btc["value"] == 67300.5 and btc["timestamp"] == "2024-03-25T08:46:00Z"
        assert len(worker.get("/prices/")[1]) == 5
        assert db.prices.count_documents({}) == 6
    finally:
        fake.fault = None
    fake.prices["ethereum"] = {**fake.prices["ethereum"], "usd": 3471.0, "last_updated_at": 1711356400}
    wait_for(lambda: db.prices.count_documents({}) == 7, 30, "the first tick after the restart")
    assert db.prices.count_documents({"sensor_id": "BTC"}) == 2


def test_older_tick_never_replaces_the_table_entry(worker, fake, db):
    fake.prices["bitcoin"] = {**fake.prices["bitcoin"], "usd": 60000.0, "last_updated_at": 1711350000}
    wait_for(lambda: db.prices.find_one({"_id": "BTC_2024-03-25T07:00:00Z"}), 30, "the older BTC tick stored")
    assert worker.price("BTC") == 67300.5


def test_unknown_coin_is_named_once_and_the_rest_go_on(services, unique_name):
    with FakeCoinGeckoServer(FakeCoinGecko()) as fake:
        check_unknown_coin_warning(fake, unique_name)


def check_unknown_coin_warning(fake, unique_name):
    client = MongoClient(os.environ.get("MONGO_URI", "mongodb://localhost:27017"))
    w = Worker(unique_name, {"COINGECKO_API_URL": fake.url, "CRYPTO_INTERVAL": "1"},
               args=("--symbols", "bitcoin,notacoin", "--interval", "1"))
    try:
        w.start()
        wait_for(lambda: client[unique_name].prices.count_documents({"sensor_id": "BTC"}) >= 1, 60, "BTC stored")
        wait_for(lambda: len(fake.calls_to("/simple/price")) >= 3, 30, "a few polls")
    finally:
        w.stop()
        client.drop_database(unique_name)
        client.close()
    warnings = [line for line in w.log_text().splitlines() if "notacoin" in line]
    assert len(warnings) == 1 and "WARNING" in warnings[0], warnings
