"""The coin catalogue fetched from a local server answering like CoinGecko's /coins/markets: cached for a day,
refreshed after, tickers kept across refreshes, and the built-in list when CoinGecko cannot be reached."""

from __future__ import annotations

import datetime as dt
import logging

import pytest

from cryptoapp.coins import Coin, load_catalogue, resolve_all
from cryptoapp.sources.budget import request_budget
from cryptoapp.sources.coingecko import CoinGeckoClient
from testkit.processes import Worker, wait_for
from tests.support.fake_coingecko import FakeCoinGecko, FakeCoinGeckoServer, markets_rows

UTC = dt.timezone.utc
NOW = dt.datetime(2024, 3, 25, 9, tzinfo=UTC)


@pytest.fixture
def fake():
    with FakeCoinGeckoServer(FakeCoinGecko()) as server:
        yield server


@pytest.fixture
async def client(fake):
    cg = CoinGeckoClient(fake.url, None, request_budget(6000), timeout=5)
    await cg.start()
    yield cg
    await cg.stop()


async def test_fetched_once_then_served_from_the_cache_for_a_day(fake, client, tmp_path):
    path = tmp_path / "coins.json"
    cat = await load_catalogue(client, path, ["top:5", "aptos"], now=NOW)
    assert [c.ticker for c in resolve_all(["top:5", "aptos"], cat)] == ["BTC", "ETH", "USDT", "BNB", "SOL", "APT"]
    [call] = fake.calls_to("/coins/markets")
    assert call.params == {"vs_currency": "usd", "order": "market_cap_desc", "per_page": "250", "page": "1",
                           "sparkline": "false"}
    assert await load_catalogue(client, path, ["top:5"], now=NOW + dt.timedelta(hours=23)) == cat
    assert len(fake.calls_to("/coins/markets")) == 1
    await load_catalogue(client, path, ["top:5"], now=NOW + dt.timedelta(hours=25))
    assert len(fake.calls_to("/coins/markets")) == 2  # refreshed daily


async def test_a_refresh_keeps_every_ticker_with_its_coin(fake, client, tmp_path):
    path = tmp_path / "coins.json"
    before = await load_catalogue(client, path, ["top:3"], now=NOW)
    assert before.resolve("tokamak-network") == Coin("tokamak-network", "TON2")
    # Tokamak outgrows Toncoin: it may not take the ticker TON, under which Toncoin's history is stored.
    fake.markets = markets_rows([("tokamak-network", "ton", "Tokamak Network", 10**13),
                                 ("toncoin", "ton", "Toncoin", 10**9)])
    after = await load_catalogue(client, path, ["top:3"], now=NOW + dt.timedelta(days=2))
    assert after.resolve("tokamak-network").ticker == "TON2" and after.resolve("toncoin").ticker == "TON"
    assert [c.coin_id for c in after.top(2)] == ["tokamak-network", "toncoin"]


async def test_a_coin_beyond_the_first_page_is_asked_for_by_id(fake, client, tmp_path):
    fillers = [(f"filler-{i}", f"f{i}", f"Filler {i}", 10**9 - i) for i in range(250)]
    fake.markets = markets_rows(fillers + [("render-token", "rndr", "Render", 1000)])  # ranked 251st
    cat = await load_catalogue(client, tmp_path / "coins.json", ["filler-0", "render-token"], now=NOW)
    assert cat.resolve("render-token") == Coin("render-token", "RNDR")
    first, second = fake.calls_to("/coins/markets")
    assert "ids" not in first.params and second.params["ids"] == "render-token"


async def test_offline_the_built_in_list_serves_with_one_warning(fake, client, tmp_path, caplog):
    fake.fault = "503"
    caplog.set_level(logging.WARNING, "cryptoapp.coins")
    cat = await load_catalogue(client, tmp_path / "coins.json", ["top:5"], now=NOW)
    assert cat is None
    assert [c.ticker for c in resolve_all(["top:5"], cat)] == ["BTC", "ETH", "BNB", "USDT", "USDC"]
    [line] = [r.getMessage() for r in caplog.records if r.name == "cryptoapp.coins"]
    assert "unavailable" in line and "built-in list" in line


async def test_offline_with_a_stale_cache_the_cache_serves(fake, client, tmp_path, caplog):
    path = tmp_path / "coins.json"
    cached = await load_catalogue(client, path, ["top:5"], now=NOW)
    fake.fault = "html-403"
    caplog.set_level(logging.WARNING, "cryptoapp.coins")
    assert await load_catalogue(client, path, ["top:5"], now=NOW + dt.timedelta(days=3)) == cached
    assert any("the cached one of 2024-03-25" in r.getMessage() for r in caplog.records)


def test_a_worker_leaves_a_coin_nobody_lists_out_with_one_line_and_stores_none_of_it(db):
    """Requires Kafka and MongoDB: a real worker on the simulated source, as `make demo` runs it."""
    worker = Worker(db.name, {"CRYPTO_SOURCE": "simulated", "CRYPTO_SYMBOLS": "bitcoin,notacoin",
                              "CRYPTO_INTERVAL": "0.5", "CRYPTO_CANDLES": "0", "CRYPTO_FORECASTS": "0"})
    worker.start()
    try:
        wait_for(lambda: db.prices.count_documents({"sensor_id": "BTC"}) >= 3, 60, "three BTC ticks stored")
    finally:
        worker.stop()
    lines = [line for line in worker.log_text().splitlines() if "notacoin" in line.lower()]
    assert len(lines) == 1, lines
    assert "CRYPTO_SYMBOLS names a coin not in the built-in list: 'notacoin' (nearest known ids: " in lines[0]
    assert "left out, pricing BTC" in lines[0]
    assert db.prices.distinct("sensor_id") == ["BTC"]
