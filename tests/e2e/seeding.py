"""Price ticks written straight into MongoDB, shaped like the worker's documents, for the dashboard's tests."""

from __future__ import annotations

import datetime as dt
import math
import random
from collections.abc import Iterable

from pymongo.database import Database

from cryptoapp.schema import COINGECKO, COINGECKO_BACKFILL, PRICES, PRICES_INDEXES, bson_time, tick_id

# Late-2025 levels: price (USD), 24 h volume (USD), circulating supply.
COINS = {
    "BTC": (87000.0, 6.0e10, 19.95e6),
    "ETH": (2900.0, 2.5e10, 120.7e6),
    "BNB": (850.0, 2.0e9, 137.7e6),
    "USDT": (1.0, 9.0e10, 184e9),
    "USDC": (1.0, 1.2e10, 75e9),
}


def tick(ticker: str, timestamp: dt.datetime, value: float | None, *, source: str = COINGECKO,
         volume_24h: float | None = None, change_24h_pct: float | None = None, market_cap: float | None = None,
         bid_price: float | None = None, ask_price: float | None = None, granularity: str | None = None) -> dict:
    """One stored tick as the worker writes it (shared/DESIGN.md)."""
    timestamp = bson_time(timestamp)
    doc = {
        "_id": tick_id(ticker, timestamp, source), "timestamp": timestamp, "value": value, "sensor_id": ticker,
        "bid_price": bid_price, "ask_price": ask_price, "volume_24h": volume_24h, "change_24h_pct": change_24h_pct,
        "market_cap": market_cap, "currency": "usd", "source": source, "inserted_at": timestamp,
    }
    if granularity:
        doc["granularity"] = granularity
    return doc


def store(db: Database, docs: Iterable[dict]) -> int:
    """Insert the ticks into db.prices (with the worker's index) in batches; returns how many were written."""
    prices = db[PRICES]
    for keys, name in PRICES_INDEXES:
        prices.create_index(list(keys), name=name)
    batch, written = [], 0
    for doc in docs:
        batch.append(doc)
        if len(batch) == 5000:
            written += len(prices.insert_many(batch, ordered=False).inserted_ids)
            batch = []
    if batch:
        written += len(prices.insert_many(batch, ordered=False).inserted_ids)
    return written


def market(now: dt.datetime, backfill_hours: float = 48, gap_hours: float = 1, live_hours: float = 5,
           interval_s: float = 60, seed: int = 7) -> list[dict]:
    """Two days of a realistic history per default coin: 5-minute backfill, an hour with no data, then live ticks.

    Live ticks stop `interval_s / 2` before `now`, so no coin is stale.
    """
    rng = random.Random(seed)
    docs = []
    live_start = now - dt.timedelta(hours=live_hours)
    backfill_end = live_start - dt.timedelta(hours=gap_hours)
    backfill_start = backfill_end - dt.timedelta(hours=backfill_hours - gap_hours - live_hours)
    for ticker, (price, volume, supply) in COINS.items():
        sigma = 0.00005 if ticker.startswith("USD") else 0.0015
        opening = price
        t = backfill_start
        while t <= now - dt.timedelta(seconds=interval_s / 2):
            backfill = t < backfill_end
            step = 300 if backfill else interval_s
            price *= math.exp(rng.gauss(0.0, sigma * math.sqrt(step / 60)))
            volume *= math.exp(rng.gauss(0.0, 0.002 * math.sqrt(step / 60)))
            if backfill or t >= live_start:
                docs.append(tick(ticker, t, price, source=COINGECKO_BACKFILL if backfill else COINGECKO,
                                 volume_24h=volume, change_24h_pct=(price / opening - 1) * 100,
                                 market_cap=price * supply, granularity="5m" if backfill else None))
            t += dt.timedelta(seconds=step)
    return docs
