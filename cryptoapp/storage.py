"""The worker's MongoDB access (the only module here that imports the driver): idempotent bulk upserts."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from typing import Iterable

import bson
from bson.errors import BSONError
from mode import Service
from pymongo import ASCENDING, AsyncMongoClient, InsertOne, UpdateOne
from pymongo.errors import BulkWriteError, PyMongoError
from tenacity import AsyncRetrying, retry_if_exception_type, wait_exponential_jitter

from cryptoapp.prices.models import UTC, PriceTick, to_document
from cryptoapp.schema import FORECAST_SCORES, FORECASTS, FORECASTS_INDEXES
from cryptoapp.settings import mask_uri

log = logging.getLogger(__name__)

COLLECTION = "prices"
# Declared next to the collection they serve; created idempotently on first contact.
INDEXES = [([("sensor_id", ASCENDING), ("timestamp", ASCENDING)], "sensor_id_timestamp")]
UPDATE_CHUNK = 50
# Per-document write errors that pass (a primary stepping down, a server shutting down): retried.
# Any other per-document error is the document's own fault and retrying it would block the stream.
TRANSIENT_WRITE_ERRORS = {6, 7, 89, 91, 189, 262, 9001, 10107, 11600, 11602, 13435, 13436}


class StorageError(Exception):
    """A write that did not reach MongoDB; the message names the server and the cause."""


@dataclass
class WriteResult:
    inserted: int = 0
    updated: int = 0
    rejected: dict[str, str] = field(default_factory=dict)  # _id -> why MongoDB can never store that tick


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
        # A socket timeout turns a server that hangs (stopped, partitioned) into a retried StorageError.
        self.client = AsyncMongoClient(self.uri, tz_aware=True, serverSelectionTimeoutMS=5000,
                                       connectTimeoutMS=5000, socketTimeoutMS=30000, appname="cryptoapp-worker")
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
        """Writes a batch idempotently; the last tick of each _id in the batch wins.

        New documents go in one unordered insert_many. Upserts would give the same result, but
        FerretDB (SQLite) runs each one as a lookup plus a transaction, tens of milliseconds apiece,
        while a batch insert takes milliseconds. Only ticks whose _id is already stored (a replay
        after a crash, a poll within the same source second) are compared and refreshed one by one.
        """
        by_id = {t.tick_id: t for t in ticks}
        now = dt.datetime.now(UTC)
        docs, rejected = [], {}
        for tick in by_id.values():
            doc = to_document(tick, inserted_at=now)
            try:
                bson.encode(doc)
            except (BSONError, ValueError, OverflowError) as exc:  # e.g. a lone surrogate
                rejected[doc["_id"]] = f"not storable as BSON ({exc.__class__.__name__}: {exc})"
            else:
                docs.append(doc)
        if not docs:
            return WriteResult(rejected=rejected)
        try:
            if not self._indexes_ready:
                await self.ensure_indexes()
            try:
                await self.prices.insert_many(docs, ordered=False)
                return WriteResult(inserted=len(docs), rejected=rejected)
            except BulkWriteError as exc:
                errors = exc.details.get("writeErrors", [])
                transient = [e for e in errors if e.get("code") in TRANSIENT_WRITE_ERRORS]
                if transient or exc.details.get("writeConcernErrors"):
                    first = (transient or exc.details["writeConcernErrors"])[0]
                    raise StorageError(f"{len(errors)} of {len(docs)} writes failed at {self.where}: "
                                       f"code {first.get('code')}: {first.get('errmsg')}") from None
                existing = [docs[e["index"]]["_id"] for e in errors if e.get("code") == DUPLICATE_KEY]
                rejected.update({docs[e["index"]]["_id"]: f"MongoDB refused it: code {e.get('code')}: {e.get('errmsg')}"
                                 for e in errors if e.get("code") != DUPLICATE_KEY})
            updated = await self._refresh([by_id[i] for i in existing], now)
        except PyMongoError as exc:
            raise StorageError(f"MongoDB at {self.where} failed: {exc.__class__.__name__}: "
                               f"{str(exc).splitlines()[0][:200]}; is it running? (make services)") from None
        return WriteResult(inserted=len(docs) - len(errors), updated=updated, rejected=rejected)

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
        # FerretDB 1.24 (SQLite) keeps one pooled connection open per matched update until the whole
        # command ends and deadlocks at its pool size of 100, so updates go in small commands.
        for start in range(0, len(changed), UPDATE_CHUNK):
            await self.prices.bulk_write(changed[start:start + UPDATE_CHUNK], ordered=False)
        return len(changed)

    async def upsert_until_stored(self, ticks: list[PriceTick]) -> WriteResult:
        """Retries with backoff until the batch is written: a tick that reached Kafka is never dropped."""
        async for attempt in AsyncRetrying(
            retry=retry_if_exception_type(StorageError),
            wait=wait_exponential_jitter(initial=0.5, max=10),  # MongoDB back: written within ~10 s
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

    # --- forecasts (cryptoapp/forecasts): documents made by cryptoapp/forecasts/documents.py ----------

    def _forecast_collection(self, name: str):
        assert self.client is not None, "PriceStore used before start"
        return self.client[self.database][name]

    def _forecast_failure(self, exc: PyMongoError) -> StorageError:
        return StorageError(f"MongoDB at {self.where} failed: {exc.__class__.__name__}: "
                            f"{str(exc).splitlines()[0][:200]}; is it running? (make services)")

    async def write_forecasts(self, docs: list[dict]) -> int:
        """Stores the forecast documents not stored yet; returns how many were new.

        A forecast never changes once made (its `_id` names the bar it was made from), so one already
        stored (a bar replayed after a restart) is skipped: one unordered insert_many, where upserts would
        cost FerretDB a scan of the collection each."""
        if not docs:
            return 0
        collection = self._forecast_collection(FORECASTS)
        try:
            if not getattr(self, "_forecast_indexes_ready", False):
                for keys, name in FORECASTS_INDEXES:
                    await collection.create_index(list(keys), name=name)
                self._forecast_indexes_ready = True
            try:
                await collection.insert_many(docs, ordered=False)
                return len(docs)
            except BulkWriteError as exc:
                errors = exc.details.get("writeErrors", [])
                other = [e for e in errors if e.get("code") != DUPLICATE_KEY]
                if other or exc.details.get("writeConcernErrors"):
                    first = (other or exc.details["writeConcernErrors"])[0]
                    raise StorageError(f"{len(other) or 1} of {len(docs)} forecasts not stored at {self.where}: "
                                       f"code {first.get('code')}: {first.get('errmsg')}") from None
                return len(docs) - len(errors)
        except PyMongoError as exc:
            raise self._forecast_failure(exc) from None

    async def write_forecast_scores(self, docs: list[dict]) -> None:
        """Rewrites each score document in place (one per coin, model and horizon), in small commands."""
        updates = [UpdateOne({"_id": doc["_id"]}, {"$set": {k: v for k, v in doc.items() if k != "_id"}},
                             upsert=True) for doc in docs]
        scores = self._forecast_collection(FORECAST_SCORES)
        try:
            for start in range(0, len(updates), UPDATE_CHUNK):
                await scores.bulk_write(updates[start:start + UPDATE_CHUNK], ordered=False)
        except PyMongoError as exc:
            raise self._forecast_failure(exc) from None

    async def prune_forecasts(self, before: dt.datetime) -> int:
        """Deletes the forecasts whose target time is before `before`; their scores are kept in the scores.

        Keeps `crypto.forecasts` bounded by what the dashboard draws (FerretDB reads cost the collection)."""
        try:
            result = await self._forecast_collection(FORECASTS).delete_many({"target_at": {"$lt": before}})
        except PyMongoError as exc:
            raise self._forecast_failure(exc) from None
        return result.deleted_count

    async def ticks_between(self, ticker: str, start: dt.datetime, end: dt.datetime) -> list[dict]:
        """`ticker`'s stored ticks with start <= timestamp < end, oldest first: timestamp, value, volume_24h, source."""
        try:
            cursor = self.prices.find({"sensor_id": ticker, "timestamp": {"$gte": start, "$lt": end}},
                                      {"_id": 0, "timestamp": 1, "value": 1, "volume_24h": 1, "source": 1}
                                      ).sort("timestamp", ASCENDING)
            return [doc async for doc in cursor]
        except PyMongoError as exc:
            raise self._forecast_failure(exc) from None
