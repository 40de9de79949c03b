"""The ticks' collections: the archive (crypto.prices), each series' newest tick (crypto.latest) and the workers'
status (crypto.status), with the stored tick's document form."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Iterable, Optional

import bson
from bson.errors import BSONError
from pymongo import ASCENDING, InsertOne, UpdateOne
from pymongo.errors import DuplicateKeyError

from cryptoapp.prices.models import PriceTick
from cryptoapp.schema import (
    BAR_FIELDS, LATEST, OPTIONAL_TICK_NUMBERS, PRICES, PRICES_INDEXES, SEED_ID_SOURCES, STATUS, UTC, one_tick_per_id,
    series_id)
from cryptoapp.storage.base import Family, translated


@dataclass
class WriteResult:
    inserted: int = 0
    updated: int = 0
    rejected: dict[str, str] = field(default_factory=dict)  # _id -> why MongoDB can never store that tick


def to_document(tick: PriceTick, inserted_at: dt.datetime) -> dict[str, Any]:
    """The stored form in crypto.prices (shared/DESIGN.md); `inserted_at` is set once, on insert."""
    doc = {
        "_id": tick.tick_id,
        "timestamp": tick.timestamp,
        "value": tick.value,
        "sensor_id": tick.ticker,
        "bid_price": tick.bid_price,
        "ask_price": tick.ask_price,
        "bid_size": tick.bid_size,
        "ask_size": tick.ask_size,
        "volume_24h": tick.volume_24h,
        "change_24h_pct": tick.change_24h_pct,
        "market_cap": tick.market_cap,
        "currency": tick.currency,
        "source": tick.source,
        "inserted_at": inserted_at,
    }
    if tick.granularity:
        doc["granularity"] = tick.granularity
    return doc


def _number(value: Any) -> Optional[float]:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def from_document(doc: dict[str, Any]) -> PriceTick:
    """The tick a stored document holds (the inverse of to_document; fields it lacks stay None)."""
    return PriceTick(
        ticker=doc["sensor_id"], timestamp=doc["timestamp"], value=float(doc["value"]), source=doc.get("source") or "",
        currency=doc.get("currency") or "usd", granularity=doc.get("granularity"),
        **{name: _number(doc.get(name)) for name in OPTIONAL_TICK_NUMBERS})


def upsert_for(tick: PriceTick, now: dt.datetime) -> UpdateOne | InsertOne:
    """Live ticks refresh their document; backfilled ticks (granularity set) never overwrite one."""
    doc = to_document(tick, inserted_at=now)
    if tick.granularity is not None:
        # Insert-if-absent: an _id already stored fails with a duplicate-key error, ignored below.
        # (An upsert with $setOnInsert would do the same, but FerretDB 1.24 drops its null fields.)
        return InsertOne(doc)
    doc_id = doc.pop("_id")
    inserted_at = doc.pop("inserted_at")
    # A live tick replacing a backfilled one at the same time drops its granularity with its source.
    return UpdateOne({"_id": doc_id}, {"$set": doc, "$unset": {"granularity": ""},
                                       "$setOnInsert": {"inserted_at": inserted_at}}, upsert=True)


def storable(docs: list[dict]) -> tuple[list[dict], dict[str, str]]:
    """The documents BSON can encode, and the others' reasons by _id (e.g. a lone surrogate in a text)."""
    kept, rejected = [], {}
    for doc in docs:
        try:
            bson.encode(doc)
        except (BSONError, ValueError, OverflowError) as exc:
            rejected[doc["_id"]] = f"not storable as BSON ({exc.__class__.__name__}: {exc})"
        else:
            kept.append(doc)
    return kept, rejected


class Ticks(Family):
    """The archive, written idempotently by deterministic _id, and the small per-series and per-worker documents."""

    INDEXES = {PRICES: PRICES_INDEXES}

    @property
    def prices(self):
        return self.collection(PRICES)

    @property
    def latest(self):
        return self.collection(LATEST)

    @translated
    async def upsert(self, ticks: Iterable[PriceTick]) -> WriteResult:
        """Writes a batch idempotently; of the ticks of one _id, the one schema.one_tick_per_id keeps is written
        (the last live tick, a backfilled one only where no live one is).

        New documents go in one insert (Family.insert_new). Only ticks whose _id is already stored (a replay
        after a crash, a poll within the same source second) are compared and refreshed one by one.
        """
        by_id = one_tick_per_id(ticks)  # within a batch as across batches
        now = dt.datetime.now(UTC)
        docs, rejected = [to_document(tick, inserted_at=now) for tick in by_id.values()], {}
        await self.indexed()
        try:
            written = await self.insert_new(self.prices, docs, "ticks", refusable=True)
        except (BSONError, ValueError, OverflowError):  # the driver encodes before it sends: nothing was written
            docs, rejected = storable(docs)  # so each document is encoded alone once, only for such a batch
            written = await self.insert_new(self.prices, docs, "ticks", refusable=True)
        updated = await self._refresh([by_id[i] for i in written.existing], now)
        return WriteResult(inserted=len(written.new), updated=updated, rejected={**rejected, **written.refused})

    async def _refresh(self, ticks: list[PriceTick], now: dt.datetime) -> int:
        """Applies upsert_for() to already stored live ticks whose stored fields differ; returns how many.

        The stored documents are read in one query: one find_one per tick made a replay of a batch take
        one FerretDB collection scan per tick (a restarted worker stalled for minutes)."""
        fresh = {t.tick_id: (t, to_document(t, inserted_at=now)) for t in ticks
                 if t.granularity is None}  # backfill never overwrites a stored document
        if not fresh:
            return 0
        stored = {doc["_id"]: doc async for doc in self.prices.find({"_id": {"$in": list(fresh)}})}
        changed = []
        for tick_id, (tick, doc) in fresh.items():
            old = stored.get(tick_id)
            if old is None or "granularity" in old or \
                    any(old.get(k) != v for k, v in doc.items() if k != "inserted_at"):
                changed.append(upsert_for(tick, now))
        await self.bulk_write(self.prices, changed)
        return len(changed)

    async def upsert_until_stored(self, ticks: list[PriceTick]) -> WriteResult:
        """Retries until the batch is written: a tick that reached Kafka is never dropped."""
        return await self.store.until_written(lambda: self.upsert(ticks), f"the batch of {len(ticks)} ticks")

    # count and documents serve the tests' audits, which want the driver's own errors: not translated.
    async def count(self, **query) -> int:
        return await self.prices.count_documents(query)

    async def documents(self, projection: dict):
        """Every stored tick with the fields of `projection` (audits of what was stored; reads the whole archive)."""
        async for doc in self.prices.find({}, projection):
            yield doc

    @translated
    async def stored_times(self, ticker: str, since: dt.datetime,
                           sources: Iterable[str] = SEED_ID_SOURCES) -> list[tuple[dt.datetime, str | None]]:
        """The source times of `ticker`'s stored ticks from `sources` since `since`, oldest first, each with its
        granularity; by default CoinGecko's series (an exchange's ticks fill no gap in CoinGecko's history).

        Granularity is None for live ticks; backfill needs it to tell a gap from the spacing of filled history.
        """
        cursor = self.prices.find({"sensor_id": ticker, "source": {"$in": sorted(sources)},
                                   "timestamp": {"$gte": since}},
                                  {"_id": 0, "timestamp": 1, "granularity": 1}).sort("timestamp", ASCENDING)
        return [(doc["timestamp"], doc.get("granularity")) async for doc in cursor]

    @translated
    async def ticks_between(self, since: Optional[dt.datetime] = None, until: Optional[dt.datetime] = None,
                            tickers: Optional[Iterable[str]] = None, fields: Optional[Iterable[str]] = BAR_FIELDS,
                            batch_size: int = 10_000):
        """The stored ticks (the fields a bar or a view needs) with since <= timestamp < until, in no order.

        On FerretDB this reads the whole archive once: what `cryptoapp candles verify|rebuild` pay, never a page.
        """
        query: dict[str, Any] = {}
        if since is not None or until is not None:
            query["timestamp"] = {**({"$gte": since} if since else {}), **({"$lt": until} if until else {})}
        if tickers is not None:
            query["sensor_id"] = {"$in": list(tickers)}
        projection = None if fields is None else {"_id": 0, **{f: 1 for f in fields}}
        async for doc in self.prices.find(query, projection, batch_size=batch_size):
            yield doc

    @translated
    async def has_ticks(self) -> bool:
        return await self.prices.find_one({}, {"_id": 1}) is not None

    @translated
    async def delete_ticks_before(self, cutoff: dt.datetime) -> int:
        """CRYPTO_ARCHIVE_DAYS: the archive's ticks observed before `cutoff` are removed; returns how many."""
        return (await self.prices.delete_many({"timestamp": {"$lt": cutoff}})).deleted_count

    @translated
    async def save_latest(self, ticks: Iterable[PriceTick]) -> None:
        """Each series' newest tick into crypto.latest; an older tick (a replay) never replaces a newer one."""
        newest: dict[str, PriceTick] = {}
        for tick in ticks:
            series = series_id(tick.ticker, tick.source)
            if tick.is_newer_than(newest.get(series)):
                newest[series] = tick
        now = dt.datetime.now(UTC)
        for series, tick in newest.items():
            doc = {**to_document(tick, inserted_at=now), "_id": series, "series": series}
            result = await self.latest.replace_one({"_id": series, "timestamp": {"$lte": tick.timestamp}}, doc)
            if result.matched_count == 0:
                try:
                    await self.latest.insert_one(doc)
                except DuplicateKeyError:
                    pass  # a newer tick is stored already

    @translated
    async def save_status(self, doc: dict) -> None:
        """One worker's status document (crypto.status: one per worker, replaced each time)."""
        await self.collection(STATUS).replace_one({"_id": doc["_id"]}, doc, upsert=True)
