"""The worker's MongoDB access (the only module here that imports the driver): idempotent bulk upserts."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from dataclasses import dataclass
from typing import Iterable

from mode import Service
from pymongo import ASCENDING, AsyncMongoClient, InsertOne, UpdateOne
from pymongo.errors import BulkWriteError, PyMongoError
from tenacity import AsyncRetrying, retry_if_exception_type, wait_exponential_jitter

from cryptoapp.prices.models import UTC, PriceTick, to_document
from cryptoapp.settings import mask_uri

log = logging.getLogger(__name__)

COLLECTION = "prices"
# Declared next to the collection they serve; created idempotently on first contact.
INDEXES = [([("sensor_id", ASCENDING), ("timestamp", ASCENDING)], "sensor_id_timestamp")]


class StorageError(Exception):
    """A write that did not reach MongoDB; the message names the server and the cause."""


@dataclass
class WriteResult:
    inserted: int = 0
    updated: int = 0


DUPLICATE_KEY = 11000


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


class PriceStore(Service):
    """One MongoDB client per worker, opened and closed with it."""

    def __init__(self, uri: str, database: str, **kwargs):
        super().__init__(**kwargs)
        self.uri = uri
        self.database = database
        self.client: AsyncMongoClient | None = None
        self._indexes_ready = False

    @property
    def where(self) -> str:
        return f"{mask_uri(self.uri)} (database {self.database!r})"

    async def on_start(self) -> None:
        # Connecting is lazy: a server that is down now only delays the first write.
        self.client = AsyncMongoClient(self.uri, tz_aware=True, serverSelectionTimeoutMS=5000,
                                       connectTimeoutMS=5000, appname="cryptoapp-worker")
        log.info("MongoDB: %s", self.where)

    async def on_stop(self) -> None:
        if self.client is not None:
            await self.client.close()

    @property
    def prices(self):
        assert self.client is not None, "PriceStore used before start"
        return self.client[self.database][COLLECTION]

    async def ensure_indexes(self) -> None:
        for keys, name in INDEXES:
            await self.prices.create_index(keys, name=name)
        self._indexes_ready = True

    async def upsert(self, ticks: Iterable[PriceTick]) -> WriteResult:
        """One unordered bulk write of upserts; the last tick of each _id in the batch wins."""
        by_id = {t.tick_id: t for t in ticks}
        if not by_id:
            return WriteResult()
        try:
            if not self._indexes_ready:
                await self.ensure_indexes()
            now = dt.datetime.now(UTC)
            result = await self.prices.bulk_write([upsert_for(t, now) for t in by_id.values()], ordered=False)
        except BulkWriteError as exc:
            errors = [e for e in exc.details.get("writeErrors", []) if e.get("code") != DUPLICATE_KEY]
            if not errors:  # only backfilled ticks whose _id was already stored: nothing to do
                return WriteResult(inserted=exc.details.get("nInserted", 0) + exc.details.get("nUpserted", 0),
                                   updated=exc.details.get("nMatched", 0))
            first = errors[0]
            raise StorageError(f"{len(errors)} of {len(by_id)} writes failed at {self.where}: "
                               f"code {first.get('code')}: {first.get('errmsg')}") from None
        except PyMongoError as exc:
            raise StorageError(f"MongoDB at {self.where} failed: {exc.__class__.__name__}: "
                               f"{str(exc).splitlines()[0][:200]}; is it running? (make services)") from None
        return WriteResult(inserted=result.inserted_count + result.upserted_count, updated=result.matched_count)

    async def upsert_until_stored(self, ticks: list[PriceTick]) -> WriteResult:
        """Retries with backoff until the batch is written: a tick that reached Kafka is never dropped."""
        async for attempt in AsyncRetrying(
            retry=retry_if_exception_type(StorageError),
            wait=wait_exponential_jitter(initial=0.5, max=30),
            before_sleep=lambda state: log.warning(
                "%s; retry %d in %.1f s (the batch of %d ticks is held, its offsets uncommitted)",
                state.outcome.exception(), state.attempt_number, state.upcoming_sleep, len(ticks)),
        ):
            with attempt:
                return await self.upsert(ticks)
        raise AssertionError("unreachable")

    async def count(self, **query) -> int:
        return await self.prices.count_documents(query)

    async def stored_times(self, ticker: str, since: dt.datetime) -> list[tuple[dt.datetime, str | None]]:
        """The source times of `ticker`'s stored ticks since `since`, oldest first, each with its granularity.

        Granularity is None for live ticks; backfill needs it to tell a gap from the spacing of filled history.
        """
        try:
            cursor = self.prices.find({"sensor_id": ticker, "timestamp": {"$gte": since}},
                                      {"_id": 0, "timestamp": 1, "granularity": 1}).sort("timestamp", ASCENDING)
            return [(doc["timestamp"], doc.get("granularity")) async for doc in cursor]
        except PyMongoError as exc:
            raise StorageError(f"MongoDB at {self.where} failed: {exc.__class__.__name__}: "
                               f"{str(exc).splitlines()[0][:200]}; is it running? (make services)") from None

    async def flush_on_shutdown(self, ticks: list[PriceTick], grace: float) -> bool:
        """Last tries to write a batch while the worker stops; False if MongoDB stayed unreachable."""
        try:
            async with asyncio.timeout(grace):
                await self.upsert_until_stored(ticks)
            return True
        except TimeoutError:
            return False
