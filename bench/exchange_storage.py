"""Storage cost of exchange ticks: bytes per stored tick with its index (collStats), beside CoinGecko's, and a month of one coin at 1 Hz."""

from __future__ import annotations

import datetime as dt
import json
import random
import sys

import bson

from bench import harness
from bench.storage_cost import _sqlite_files
from cryptoapp.coins import Coin
from cryptoapp.prices.models import UTC, PriceTick
from cryptoapp.sources.markets import MarketChoice, tick_from_ticker
from cryptoapp.storage.ticks import to_document

MONTH_AT_1_HZ = 30 * 24 * 3600
MONTH_AT_ONE_A_MINUTE = 30 * 24 * 60
BTC = Coin("bitcoin", "BTC")


def exchange_ticks(count: int, start: dt.datetime, seed: int = 7) -> list[PriceTick]:
    """`count` ticks of BTC/USD one second apart, made by the source's own parser from ccxt-shaped tickers
    (a random walk on a 0.01 grid; sizes and volumes with Binance's 8 decimals), so every field is filled."""
    rng = random.Random(seed)
    choice = MarketChoice(BTC, "BTC/USD", "USD")
    last, volume = 67187.33, 1810398212.33
    ticks = []
    for i in range(count):
        last = round(last + rng.choice((-1, 1)) * rng.randint(0, 300) / 100, 2)
        volume = round(volume + rng.uniform(-5e4, 5e4), 2)
        event_ms = int((start + dt.timedelta(seconds=i)).timestamp() * 1000) + rng.randint(0, 999)
        ticker = {"timestamp": event_ms, "last": last, "bid": round(last - 0.01, 2), "ask": round(last + 0.01, 2),
                  "bidVolume": round(rng.uniform(0.00001, 5), 8), "askVolume": round(rng.uniform(0.00001, 5), 8),
                  "quoteVolume": volume, "percentage": round(rng.uniform(-5, 5), 3), "info": {"E": event_ms}}
        ticks.append(tick_from_ticker(ticker, choice, "binanceus", start))
    return ticks


def coingecko_ticks(count: int, start: dt.datetime) -> list[PriceTick]:
    """The baseline: CoinGecko-shaped ticks (no bid/ask; market cap, volume, change), one a minute."""
    return [PriceTick(ticker="BTC", timestamp=start + dt.timedelta(minutes=i), value=67187.3358936566 + i,
                      source="coingecko", currency="usd", volume_24h=31260929299.52484 + i,
                      change_24h_pct=3.637278946773539, market_cap=1317802988326.2493 + i) for i in range(count)]


def _measure(client, database: str, ticks: list[PriceTick]) -> dict:
    collection = client[database]["prices"]
    harness.create_indexes(collection)
    now = dt.datetime.now(UTC)
    collection.insert_many([to_document(t, now) for t in ticks], ordered=False)
    stats = client[database].command("collStats", "prices")
    per_tick = (stats["size"] + stats["totalIndexSize"]) / stats["count"]
    files = _sqlite_files(database)
    return {"ticks": stats["count"], "size": stats["size"], "totalIndexSize": stats["totalIndexSize"],
            "avgObjSize": stats.get("avgObjSize"), "bytes_per_tick": round(per_tick, 1),
            "bson_bytes_per_document": round(sum(len(bson.encode(to_document(t, now))) for t in ticks) / len(ticks), 1),
            "sqlite_file_bytes": files, "sqlite_bytes_per_tick": round(files / stats["count"], 1) if files else None}


def run(count: int = 3000) -> dict:
    client = harness.mongo()
    start = dt.datetime(2026, 1, 1, tzinfo=UTC)
    names = {"exchange": harness.unique_name("xstore"), "coingecko": harness.unique_name("cgstore")}
    try:
        exchange = _measure(client, names["exchange"], exchange_ticks(count, start))
        coingecko = _measure(client, names["coingecko"], coingecko_ticks(count, start))
        server = client.admin.command("buildInfo").get("version")
    finally:
        for name in names.values():
            client.drop_database(name)
        client.close()
    per_month = exchange["bytes_per_tick"] * MONTH_AT_1_HZ
    return {
        "source": "collStats: size + totalIndexSize, divided by count", "server": server,
        "exchange_tick": exchange, "coingecko_tick": coingecko,
        "exchange_coin_month_1hz_mb": round(per_month / 2**20, 1),
        "coingecko_coin_month_1_per_minute_mb": round(coingecko["bytes_per_tick"] * MONTH_AT_ONE_A_MINUTE / 2**20, 2),
    }


if __name__ == "__main__":
    json.dump(run(int(sys.argv[1]) if len(sys.argv) > 1 else 3000), sys.stdout, indent=2)
    print()
