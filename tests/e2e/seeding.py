"""Price ticks for the dashboard's tests, stored as the worker stores them, then the views built by the product itself."""

from __future__ import annotations

import asyncio
import concurrent.futures
import datetime as dt
import math
import random
from collections.abc import Iterable

from pymongo.database import Database

from cryptoapp.candles.archive import RebuildReport, rebuild
from cryptoapp.candles.rings import BarRing, view_id
from cryptoapp.schema import (
    COINGECKO, COINGECKO_BACKFILL, PRICES, PRICES_INDEXES, RESOLUTIONS, VIEW_TAILS, VIEWS, bson_time, series_id, tick_id)
from cryptoapp.storage import PriceStore
from cryptoapp.trades.bars import add_trades, merge_bars, minute_bar, new_minute

# Late-2025 levels: price (USD), 24 h volume (USD), circulating supply.
COINS = {
    "BTC": (87000.0, 6.0e10, 19.95e6),
    "ETH": (2900.0, 2.5e10, 120.7e6),
    "BNB": (850.0, 2.0e9, 137.7e6),
    "USDT": (1.0, 9.0e10, 184e9),
    "USDC": (1.0, 1.2e10, 75e9),
}
EXCHANGE = "binanceus"


def tick(ticker: str, timestamp: dt.datetime, value: float | None, *, source: str = COINGECKO,
         volume_24h: float | None = None, change_24h_pct: float | None = None, market_cap: float | None = None,
         bid_price: float | None = None, ask_price: float | None = None, bid_size: float | None = None,
         ask_size: float | None = None, granularity: str | None = None, currency: str = "usd") -> dict:
    """One stored tick as the worker writes it (shared/DESIGN.md)."""
    timestamp = bson_time(timestamp)
    doc = {
        "_id": tick_id(ticker, timestamp, source), "timestamp": timestamp, "value": value, "sensor_id": ticker,
        "bid_price": bid_price, "ask_price": ask_price, "bid_size": bid_size, "ask_size": ask_size,
        "volume_24h": volume_24h, "change_24h_pct": change_24h_pct, "market_cap": market_cap, "currency": currency,
        "source": source, "inserted_at": timestamp,
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


async def _rebuild(uri: str, name: str, grace_s: float) -> RebuildReport:
    async with PriceStore(uri, name) as price_store:
        return await rebuild(price_store, grace_s=grace_s, say=lambda *args: None)


def seed_views(db: Database, uri: str, docs: Iterable[dict], grace_s: float = 120) -> RebuildReport:
    """The ticks into the archive, then every candle and serving view made from it by `cryptoapp candles rebuild`'s
    own function, as a user upgrading with stored history gets them."""
    docs = list(docs)
    assert store(db, docs) == len(docs)
    # A thread of its own: the caller may be inside a running event loop (an async test, pytest-asyncio's fixtures).
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, _rebuild(uri, db.name, grace_s)).result()


def market(now: dt.datetime, backfill_hours: float = 48, gap_hours: float = 1, live_hours: float = 5,
           interval_s: float = 60, seed: int = 7, coins: Iterable[str] = tuple(COINS)) -> list[dict]:
    """A realistic history per coin: 5-minute backfill, `gap_hours` with no data, then live ticks.

    Live ticks stop `interval_s / 2` before `now`, so no coin is stale.
    """
    rng = random.Random(seed)
    docs = []
    live_start = now - dt.timedelta(hours=live_hours)
    backfill_end = live_start - dt.timedelta(hours=gap_hours)
    backfill_start = backfill_end - dt.timedelta(hours=backfill_hours - gap_hours - live_hours)
    for ticker in coins:
        price, volume, supply = COINS[ticker]
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


def last(docs: list[dict], ticker: str) -> float:
    """The newest price of a coin among seeded ticks."""
    return max((d for d in docs if d["sensor_id"] == ticker), key=lambda d: d["timestamp"])["value"]


def exchange(now: dt.datetime, ticker: str = "BTC", hours: float = 2, step_s: float = 5, seed: int = 11,
             source: str = EXCHANGE, currency: str = "usdt", price: float | None = None) -> list[dict]:
    """An exchange's quotes of one coin (bid, ask, sizes, last price, 24 h volume in the quote currency), one every
    `step_s` seconds over the last `hours`, the newest a second before `now`, ending near `price` (default: the
    coin's usual level)."""
    rng = random.Random(seed)
    level, volume, _ = COINS[ticker]
    count = int(hours * 3600 / step_s)
    walk = [1.0]
    for _ in range(count - 1):
        walk.append(walk[-1] * math.exp(rng.gauss(0.0, 0.0004)))
    scale = (price or level) * 1.0004 / walk[-1]  # a USDT quote sits a little above the USD reference
    docs = []
    for i, step in enumerate(walk):
        t = now - dt.timedelta(seconds=1 + (count - 1 - i) * step_s)
        value = step * scale
        half_spread = value * rng.uniform(0.00002, 0.0001)
        docs.append(tick(ticker, t, round(value, 2), source=source, currency=currency,
                         bid_price=round(value - half_spread, 2), ask_price=round(value + half_spread, 2),
                         bid_size=round(rng.uniform(0.01, 2.0), 5), ask_size=round(rng.uniform(0.01, 2.0), 5),
                         volume_24h=volume / 40, change_24h_pct=round(rng.uniform(-3, 3), 3)))
    return docs


def trade_candles(db: Database, now: dt.datetime, ticker: str = "BTC", hours: float = 2, per_minute: int = 40,
                  seed: int = 13, source: str = EXCHANGE, currency: str = "usdt", price: float | None = None) -> int:
    """An exchange series' candles made from trades, as the trade stage makes them: `per_minute` trades a minute (a
    random walk with random amounts, ids in sequence) over the last `hours`, each minute's bar by the product's own
    trade-bar code, the coarser bars merged from them, written as the series' bar rings (replacing the ticker-built
    ones). Returns the number of trades."""
    rng = random.Random(seed)
    series = series_id(ticker, source)
    level = (price or COINS[ticker][0]) * 1.0004
    first_minute = (int(now.timestamp()) // 60 - int(hours * 60)) * 60
    minutes, trade_id, value = [], 1_000_000, level
    for start in range(first_minute, int(now.timestamp()) // 60 * 60, 60):
        minute = new_minute(series, ticker, currency, start)
        trades = []
        for i in range(per_minute):
            value *= math.exp(rng.gauss(0.0, 0.0003))
            trades.append((trade_id, start * 1000 + i * 60_000 // per_minute, round(value, 2),
                           round(rng.lognormvariate(-3, 1), 5)))
            trade_id += 1
        add_trades(minute, trades)
        minutes.append(minute_bar(minute))
    rings = {res: BarRing(series, ticker, res, currency, source) for res in RESOLUTIONS}
    for res, ring in rings.items():
        step = RESOLUTIONS[res]
        groups: dict[int, list] = {}
        for bar in minutes:
            groups.setdefault(int(bar.start.timestamp()) // step * step, []).append(bar)
        for children in groups.values():
            ring.put(children[0] if res == "1m" else merge_bars(children, res))
        doc = ring.document(now)
        db[VIEWS].replace_one({"_id": doc["_id"]}, doc, upsert=True)
        db[VIEW_TAILS].delete_one({"_id": view_id(series, res)})
    return len(minutes) * per_minute
