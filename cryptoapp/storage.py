"""The worker's MongoDB access (the only module here that imports the driver): idempotent bulk upserts."""

from __future__ import annotations

import datetime as dt
import logging
import operator
from dataclasses import dataclass, field
from typing import AsyncIterator, Callable, Iterable

import bson
from bson.errors import BSONError
from mode import Service
from pymongo import ASCENDING, AsyncMongoClient, InsertOne, ReplaceOne, UpdateOne
from pymongo.errors import BulkWriteError, OperationFailure, PyMongoError
from tenacity import AsyncRetrying, retry_if_exception_type, wait_exponential_jitter

from cryptoapp.prices.models import UTC, PriceTick, to_document
from cryptoapp.schema import ANALYTICS_RUNS, UNSUPPORTED_AGGREGATION_CODES
from cryptoapp.settings import mask_uri

log = logging.getLogger(__name__)

COLLECTION = "prices"
# Declared next to the collection they serve; created idempotently on first contact.
INDEXES = [([("sensor_id", ASCENDING), ("timestamp", ASCENDING)], "sensor_id_timestamp")]
UPDATE_CHUNK = 50
AGGREGATION_PROBE = "prices_capability_probe"  # never written: asking it what the server can do costs nothing
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

    def __init__(self, uri: str, database: str, socket_timeout_s: float = 30.0, **kwargs):
        """`socket_timeout_s`: the longest wait for one answer; batch reads of the archive need more
        (a filtered read on FerretDB scans the whole collection before its first document)."""
        super().__init__(**kwargs)
        self.uri = uri
        self.database = database
        self.socket_timeout_s = socket_timeout_s
        self.client: AsyncMongoClient | None = None
        self._indexes_ready = False

    @property
    def where(self) -> str:
        return f"{mask_uri(self.uri)} (database {self.database!r})"

    async def on_start(self) -> None:
        # Connecting is lazy: a server that is down now only delays the first write.
        # A socket timeout turns a server that hangs (stopped, partitioned) into a retried StorageError.
        self.client = AsyncMongoClient(self.uri, tz_aware=True, serverSelectionTimeoutMS=5000,
                                       connectTimeoutMS=5000, socketTimeoutMS=self.socket_timeout_s * 1000,
                                       appname="cryptoapp-worker")
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

    # --- batch analytics (cryptoapp/analytics): reads of the archive, writes of the results ----------------

    def _failed(self, exc: PyMongoError) -> StorageError:
        return StorageError(f"MongoDB at {self.where} failed: {exc.__class__.__name__}: "
                            f"{str(exc).splitlines()[0][:200]}; is it running? (make services)")

    async def tick_days(self, since: dt.datetime | None = None) -> dict[tuple[str, dt.date], int]:
        """How many ticks each (ticker, UTC day) holds, for days from `since` on (all days when None).

        MongoDB counts them on the server in one $group. FerretDB 1.x has no date operator in $group
        (NotImplemented; asked once, on an empty collection, since it may read the whole archive before
        saying so), so there the tickers and times alone are streamed and counted here: one pass over the
        collection, which is what any query costs on that server.
        """
        match = {"timestamp": {"$gte": since}} if since is not None else {}
        day = {"$dateToString": {"format": "%Y-%m-%d", "date": "$timestamp", "timezone": "UTC"}}
        pipeline = [{"$match": match}, {"$group": {"_id": {"t": "$sensor_id", "d": day}, "n": {"$sum": 1}}}]
        counts: dict[tuple[str, dt.date], int] = {}
        try:
            if await self._aggregates(pipeline):
                async for row in await self.prices.aggregate(pipeline):
                    key = row["_id"]
                    if isinstance(key.get("t"), str) and isinstance(key.get("d"), str):
                        counts[(key["t"], dt.date.fromisoformat(key["d"]))] = int(row["n"])
                return counts
            async for doc in self.prices.find(match, {"_id": 0, "sensor_id": 1, "timestamp": 1}, batch_size=10_000):
                ticker, ts = doc.get("sensor_id"), doc.get("timestamp")
                if isinstance(ticker, str) and isinstance(ts, dt.datetime):
                    key = (ticker, ts.astimezone(UTC).date())
                    counts[key] = counts.get(key, 0) + 1
            return counts
        except PyMongoError as exc:
            raise self._failed(exc) from None

    async def _aggregates(self, pipeline: list[dict]) -> bool:
        """Whether the server runs `pipeline`: tried on an empty collection, so the answer costs nothing."""
        try:
            await (await self.client[self.database][AGGREGATION_PROBE].aggregate(pipeline)).to_list()
        except OperationFailure as exc:
            if exc.code not in UNSUPPORTED_AGGREGATION_CODES:
                raise
            return False
        return True

    async def iter_ticks(self, ticker: str | None, start: dt.datetime | None = None, end: dt.datetime | None = None,
                         batch_size: int = 10_000) -> AsyncIterator[dict]:
        """Stored ticks with start <= timestamp < end (a bound that is None: no bound), of `ticker` (every coin
        when None), as stored, in no set order.

        Unsorted on purpose: FerretDB sorts a whole match in memory before it sends the first document
        (over 30 s for 2.6 M ticks, past the client's socket timeout), and the export orders each day itself.
        """
        query: dict = {}
        if start is not None or end is not None:
            query["timestamp"] = {**({"$gte": start} if start else {}), **({"$lt": end} if end else {})}
        if ticker is not None:
            query["sensor_id"] = ticker
        try:
            async for doc in self.prices.find(query, batch_size=batch_size):
                yield doc
        except PyMongoError as exc:
            raise self._failed(exc) from None

    async def sync_results(self, collection: str, docs: list[dict],
                           same: Callable[[dict, dict], bool] = operator.eq) -> tuple[int, int, int]:
        """Makes `collection` hold exactly `docs` (matched by their deterministic `_id`); (inserted, replaced, deleted).

        Idempotent and cheap to repeat: the stored documents are read once, new ones go in one insert_many,
        and only documents that differ (by `same`) are replaced one by one. An upsert per document would
        scan the collection once each on FerretDB (SQLite).
        """
        target = self.client[self.database][collection]
        wanted = {doc["_id"]: doc for doc in docs}
        try:
            stored = {doc["_id"]: doc async for doc in target.find({})}
            new = [doc for key, doc in wanted.items() if key not in stored]
            changed = [doc for key, doc in wanted.items() if key in stored and not same(stored[key], doc)]
            gone = [key for key in stored if key not in wanted]
            if new:
                await target.insert_many(new, ordered=False)
            for start in range(0, len(changed), UPDATE_CHUNK):
                await target.bulk_write([ReplaceOne({"_id": doc["_id"]}, doc) for doc in changed[start:start + UPDATE_CHUNK]],
                                        ordered=False)
            if gone:
                await target.delete_many({"_id": {"$in": gone}})
        except PyMongoError as exc:
            raise self._failed(exc) from None
        return len(new), len(changed), len(gone)

    async def record_analytics_run(self, run: dict) -> None:
        """Stores one analytics run's record (its `_id` is the run's time, so storing it twice keeps one)."""
        try:
            await self.client[self.database][ANALYTICS_RUNS].replace_one({"_id": run["_id"]}, run, upsert=True)
        except PyMongoError as exc:
            raise self._failed(exc) from None
