"""The worker's MongoDB access (the only module here that imports the driver): idempotent bulk upserts."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
import operator
from typing import Any, AsyncIterator, Callable, Iterable, Optional

import bson
from bson.errors import BSONError
from mode import Service
from pymongo import ASCENDING, AsyncMongoClient, InsertOne, ReplaceOne, ReturnDocument, UpdateOne
from pymongo.errors import BulkWriteError, DuplicateKeyError, OperationFailure, PyMongoError
from tenacity import AsyncRetrying, retry_if_exception_type, wait_exponential_jitter

from cryptoapp.candles.bars import Bar
from cryptoapp.prices.models import PriceTick, to_document
from cryptoapp.schema import (
    ALERT_OUTBOX, ALERT_RULES, ALERTS, ANALYTICS_RUNS, CANDLES, CANDLES_INDEXES, FORECAST_SCORES, FORECASTS,
    FORECASTS_INDEXES, LATEST, PRICES, PRICES_INDEXES, SEED_ID_SOURCES, STATUS, UNSUPPORTED_AGGREGATION_CODES, UTC,
    VIEWS, replaces, series_id)
from cryptoapp.uris import mask_uri

log = logging.getLogger(__name__)
UPDATE_CHUNK = 50
# The fields of a stored tick that a bar or a view needs (candles verify and rebuild read only these).
BAR_FIELDS = ("timestamp", "value", "sensor_id", "source", "currency", "volume_24h", "granularity", "bid_price",
              "ask_price", "bid_size", "ask_size", "change_24h_pct", "market_cap")
AGGREGATION_PROBE = "aggregation_probe"  # never written: asking it what the server can do costs nothing
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

    def _collection(self, name: str):
        assert self.client is not None, "PriceStore used before start"
        return self.client[self.database][name]

    @property
    def prices(self):
        return self._collection(PRICES)

    def _failure(self, exc: PyMongoError) -> StorageError:
        return StorageError(f"MongoDB at {self.where} failed: {exc.__class__.__name__}: "
                            f"{str(exc).splitlines()[0][:200]}; is it running? (make services)")

    async def ensure_indexes(self) -> None:
        """The indexes cryptoapp.schema declares, created idempotently on first contact."""
        for collection, indexes in ((self.prices, PRICES_INDEXES), (self.candles, CANDLES_INDEXES)):
            for keys, name in indexes:
                await collection.create_index(list(keys), name=name)
        self._indexes_ready = True

    async def upsert(self, ticks: Iterable[PriceTick]) -> WriteResult:
        """Writes a batch idempotently; the last live tick of each _id in the batch wins (a backfilled one only
        where no live one is).

        New documents go in one unordered insert_many. Upserts would give the same result, but
        FerretDB (SQLite) runs each one as a lookup plus a transaction, tens of milliseconds apiece,
        while a batch insert takes milliseconds. Only ticks whose _id is already stored (a replay
        after a crash, a poll within the same source second) are compared and refreshed one by one.
        """
        by_id: dict[str, PriceTick] = {}
        for tick in ticks:
            held = by_id.get(tick.tick_id)
            if held is None or replaces(tick.granularity, held.granularity):  # within a batch as across batches
                by_id[tick.tick_id] = tick
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
            raise self._failure(exc) from None
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

    async def until_written(self, write, what: str):
        """Awaits `write()` until it stops raising StorageError, with backoff (MongoDB back: done within ~10 s)."""
        async for attempt in AsyncRetrying(
            retry=retry_if_exception_type(StorageError),
            wait=wait_exponential_jitter(multiplier=0.5, max=10),
            before_sleep=lambda state: log.warning(
                "%s; retry %d in %.1f s (%s is held, its offsets uncommitted)",
                state.outcome.exception(), state.attempt_number, state.upcoming_sleep, what),
        ):
            with attempt:
                return await write()
        raise AssertionError("unreachable")

    async def upsert_until_stored(self, ticks: list[PriceTick]) -> WriteResult:
        """Retries until the batch is written: a tick that reached Kafka is never dropped."""
        return await self.until_written(lambda: self.upsert(ticks), f"the batch of {len(ticks)} ticks")

    async def count(self, **query) -> int:
        return await self.prices.count_documents(query)

    async def documents(self, projection: dict):
        """Every stored tick with the fields of `projection` (audits of what was stored; reads the whole archive)."""
        async for doc in self.prices.find({}, projection):
            yield doc

    async def stored_times(self, ticker: str, since: dt.datetime,
                           sources: Iterable[str] = SEED_ID_SOURCES) -> list[tuple[dt.datetime, str | None]]:
        """The source times of `ticker`'s stored ticks from `sources` since `since`, oldest first, each with its
        granularity; by default CoinGecko's series (an exchange's ticks fill no gap in CoinGecko's history).

        Granularity is None for live ticks; backfill needs it to tell a gap from the spacing of filled history.
        """
        try:
            cursor = self.prices.find({"sensor_id": ticker, "source": {"$in": sorted(sources)},
                                       "timestamp": {"$gte": since}},
                                      {"_id": 0, "timestamp": 1, "granularity": 1}).sort("timestamp", ASCENDING)
            return [(doc["timestamp"], doc.get("granularity")) async for doc in cursor]
        except PyMongoError as exc:
            raise self._failure(exc) from None

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
        try:
            async for doc in self.prices.find(query, projection, batch_size=batch_size):
                yield doc
        except PyMongoError as exc:
            raise self._failure(exc) from None

    # --- candles and the serving views -------------------------------------------------------------------------

    @property
    def candles(self):
        return self._collection(CANDLES)

    @property
    def views(self):
        return self._collection(VIEWS)

    @property
    def latest(self):
        return self._collection(LATEST)

    async def store_candles(self, bars: Iterable[Bar]) -> int:
        """Writes closed bars idempotently (insert; a bar already stored is replaced only when it differs, as
        after a late tick); returns how many documents were written."""
        now = dt.datetime.now(UTC)
        bars = list(bars)
        docs = {bar.id: bar.document(now) for bar in bars}
        if not docs:
            return 0
        try:
            if not self._indexes_ready:
                await self.ensure_indexes()
            try:
                await self.candles.insert_many(list(docs.values()), ordered=False)
                return len(docs)
            except BulkWriteError as exc:
                errors = exc.details.get("writeErrors", [])
                if any(e.get("code") != DUPLICATE_KEY for e in errors) or exc.details.get("writeConcernErrors"):
                    first = next((e for e in errors if e.get("code") != DUPLICATE_KEY), None) or \
                        exc.details["writeConcernErrors"][0]
                    raise StorageError(f"candles not written at {self.where}: code {first.get('code')}: "
                                       f"{first.get('errmsg')}") from None
                existing = [list(docs)[e["index"]] for e in errors]
            stored = {doc["_id"]: doc async for doc in self.candles.find({"_id": {"$in": existing}})}
            by_id = {bar.id: bar for bar in bars}
            changed = [ReplaceOne({"_id": i}, docs[i]) for i in existing
                       if i not in stored or not by_id[i].same_values(stored[i])]
            for start in range(0, len(changed), UPDATE_CHUNK):  # FerretDB: small commands (see _refresh)
                await self.candles.bulk_write(changed[start:start + UPDATE_CHUNK], ordered=False)
            return len(docs) - len(existing) + len(changed)
        except PyMongoError as exc:
            raise self._failure(exc) from None

    async def stored_candles(self, since: dt.datetime, until: dt.datetime, series: Optional[Iterable[str]] = None):
        """Stored candles with since <= start < until (of some series), for `cryptoapp candles verify`."""
        query: dict[str, Any] = {"start": {"$gte": since, "$lt": until}}
        if series is not None:
            query["series"] = {"$in": list(series)}
        try:
            async for doc in self.candles.find(query):
                yield doc
        except PyMongoError as exc:
            raise self._failure(exc) from None

    async def replace_candles(self, bars: Iterable[Bar], since: dt.datetime, until: dt.datetime,
                              series: Iterable[str]) -> int:
        """The candles of `series` with since <= start < until become exactly `bars` (`cryptoapp candles rebuild`):
        one delete and batch inserts, no per-bar lookup (each would read the whole collection on FerretDB)."""
        now = dt.datetime.now(UTC)
        docs = [bar.document(now) for bar in bars]
        try:
            if not self._indexes_ready:
                await self.ensure_indexes()
            await self.candles.delete_many({"series": {"$in": list(series)}, "start": {"$gte": since, "$lt": until}})
            for start in range(0, len(docs), 10_000):
                await self.candles.insert_many(docs[start:start + 10_000], ordered=False)
            return len(docs)
        except PyMongoError as exc:
            raise self._failure(exc) from None

    async def load_view(self, view_id: str) -> Optional[dict]:
        try:
            return await self.views.find_one({"_id": view_id})
        except PyMongoError as exc:
            raise self._failure(exc) from None

    async def save_view(self, doc: dict, held_rev: int) -> bool:
        """Writes a view if the stored one is still at `held_rev` (0: none stored); False when another writer (a
        rebuild, the worker that owned the series before a rebalance) got there first: reload and apply again."""
        try:
            if held_rev == 0:
                await self.views.insert_one(doc)
                return True
            result = await self.views.replace_one({"_id": doc["_id"], "rev": held_rev}, doc)
            return result.matched_count == 1
        except DuplicateKeyError:
            return False
        except PyMongoError as exc:
            raise self._failure(exc) from None

    async def all_views(self, projection: Optional[dict] = None) -> list[dict]:
        try:
            return [doc async for doc in self.views.find({}, projection)]
        except PyMongoError as exc:
            raise self._failure(exc) from None

    async def save_latest(self, ticks: Iterable[PriceTick]) -> None:
        """Each series' newest tick into crypto.latest; an older tick (a replay) never replaces a newer one."""
        newest: dict[str, PriceTick] = {}
        for tick in ticks:
            series = series_id(tick.ticker, tick.source)
            if tick.is_newer_than(newest.get(series)):
                newest[series] = tick
        now = dt.datetime.now(UTC)
        try:
            for series, tick in newest.items():
                doc = {**to_document(tick, inserted_at=now), "_id": series, "series": series}
                result = await self.latest.replace_one({"_id": series, "timestamp": {"$lte": tick.timestamp}}, doc)
                if result.matched_count == 0:
                    try:
                        await self.latest.insert_one(doc)
                    except DuplicateKeyError:
                        pass  # a newer tick is stored already
        except PyMongoError as exc:
            raise self._failure(exc) from None

    async def save_status(self, doc: dict) -> None:
        """One worker's status document (crypto.status: one per worker, replaced each time)."""
        try:
            await self._collection(STATUS).replace_one({"_id": doc["_id"]}, doc, upsert=True)
        except PyMongoError as exc:
            raise self._failure(exc) from None

    async def has_views(self) -> bool:
        try:
            return await self.views.find_one({}, {"_id": 1}) is not None  # no filter: FerretDB reads one row
        except PyMongoError as exc:
            raise self._failure(exc) from None

    async def has_ticks(self) -> bool:
        try:
            return await self.prices.find_one({}, {"_id": 1}) is not None
        except PyMongoError as exc:
            raise self._failure(exc) from None

    async def trim_candles(self, kept_from: dict[str, Optional[float]]) -> int:
        """Removes the candles older than their resolution's retention (Unix seconds per resolution)."""
        removed = 0
        try:
            for res, since in kept_from.items():
                if since is not None:
                    start = dt.datetime.fromtimestamp(since, UTC)
                    result = await self.candles.delete_many({"resolution": res, "start": {"$lt": start}})
                    removed += result.deleted_count
            return removed
        except PyMongoError as exc:
            raise self._failure(exc) from None

    async def delete_ticks_before(self, cutoff: dt.datetime) -> int:
        """CRYPTO_ARCHIVE_DAYS: the archive's ticks observed before `cutoff` are removed; returns how many."""
        try:
            return (await self.prices.delete_many({"timestamp": {"$lt": cutoff}})).deleted_count
        except PyMongoError as exc:
            raise self._failure(exc) from None

    async def drop_views(self) -> None:
        """Empties the serving views (`cryptoapp candles rebuild` writes them afresh)."""
        try:
            await self.views.delete_many({})
            await self.latest.delete_many({})
        except PyMongoError as exc:
            raise self._failure(exc) from None

    # --- alerts (cryptoapp/alerts/): the rules; crypto.alert_outbox, the firings being delivered; crypto.alerts,
    # every firing with its final delivery state. On FerretDB every update, delete and filtered read scans the
    # whole collection, even by _id (shared/reference/services.md): the outbox, which is updated for each
    # firing, holds only what is in flight, and crypto.alerts only ever receives inserts (and the retention's
    # one delete_many), so neither a burst of firings nor months of them make a write slow the sink's.
    # Documents are built by cryptoapp.alerts.

    @property
    def alert_rules(self):
        return self._collection(ALERT_RULES)

    @property
    def alerts(self):
        return self._collection(ALERTS)

    @property
    def alert_outbox(self):
        return self._collection(ALERT_OUTBOX)

    async def add_rule(self, doc: dict) -> None:
        """Stores a new rule document (AlertRule.to_document()); its _id is new, so an existing one is an error."""
        try:
            await self.alert_rules.insert_one(doc)
        except DuplicateKeyError:
            raise StorageError(f"a rule with id {doc['_id']!r} already exists") from None
        except PyMongoError as exc:
            raise self._failure(exc) from None

    async def list_rules(self) -> list[dict]:
        """Every rule document, oldest first."""
        try:
            docs = [doc async for doc in self.alert_rules.find({})]
        except PyMongoError as exc:
            raise self._failure(exc) from None
        return sorted(docs, key=lambda d: (str(d.get("created_at")), str(d["_id"])))

    async def set_rule_enabled(self, rule_id: str, enabled: bool, now: dt.datetime) -> bool:
        """Pauses (False) or resumes (True) a rule; False when no rule has that id."""
        try:
            result = await self.alert_rules.update_one({"_id": rule_id},
                                                       {"$set": {"enabled": enabled, "updated_at": now}})
        except PyMongoError as exc:
            raise self._failure(exc) from None
        return result.matched_count == 1

    async def delete_rule(self, rule_id: str) -> bool:
        """Deletes a rule (its stored firings stay); False when no rule has that id."""
        try:
            return (await self.alert_rules.delete_one({"_id": rule_id})).deleted_count == 1
        except PyMongoError as exc:
            raise self._failure(exc) from None

    async def rules_version(self) -> tuple[int, int, dt.datetime | None]:
        """(rules, enabled rules, the newest updated_at): moves with every add, pause, resume and delete (even
        two within one millisecond), so a poller reads the rules only when it moved."""
        try:
            count = await self.alert_rules.count_documents({})
            enabled = await self.alert_rules.count_documents({"enabled": True})
            newest = await self.alert_rules.find_one({}, {"updated_at": 1}, sort=[("updated_at", -1)])
        except PyMongoError as exc:
            raise self._failure(exc) from None
        return count, enabled, (newest or {}).get("updated_at")

    async def _insert_new(self, collection, docs: list[dict]) -> list[str]:
        """Inserts documents whose _id is not stored yet (insert-if-absent); returns the ids that were new."""
        if not docs:
            return []
        try:
            await collection.insert_many(docs, ordered=False)
            return [d["_id"] for d in docs]
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors", [])
            other = [e for e in errors if e.get("code") != DUPLICATE_KEY]
            if other or exc.details.get("writeConcernErrors"):
                first = (other or exc.details["writeConcernErrors"])[0]
                raise StorageError(f"{len(errors)} of {len(docs)} alerts not stored at {self.where}: "
                                   f"code {first.get('code')}: {first.get('errmsg')}") from None
            existing = {e["index"] for e in errors}
            return [d["_id"] for i, d in enumerate(docs) if i not in existing]
        except PyMongoError as exc:
            raise self._failure(exc) from None

    async def insert_firings(self, docs: list[dict]) -> list[str]:
        """Stores finished firings (Firing.to_document(status=...)) in crypto.alerts, insert-if-absent by _id;
        returns the ids that were new."""
        return await self._insert_new(self.alerts, docs)

    async def enqueue_firings(self, docs: list[dict]) -> list[str]:
        """Puts firings to deliver (status pending) in crypto.alert_outbox, insert-if-absent by _id (a firing
        replayed while it is still in flight is not queued twice); returns the ids that were new."""
        return await self._insert_new(self.alert_outbox, docs)

    async def finish_firing(self, doc: dict) -> None:
        """Moves a firing out of the outbox with its final state: inserted into crypto.alerts (an earlier
        delivery of a replayed firing may have put it there already), then deleted from the outbox. A crash in
        between leaves it in the outbox: it is sent again (at least once) and finished then."""
        try:
            await self.alerts.insert_one(doc)
        except DuplicateKeyError:
            pass
        except PyMongoError as exc:
            raise self._failure(exc) from None
        try:
            await self.alert_outbox.delete_one({"_id": doc["_id"]})
        except PyMongoError as exc:
            raise self._failure(exc) from None

    async def pending_firings(self, limit: int = 1000) -> list[dict]:
        """The firings in the outbox, oldest first: what a (re)started worker delivers."""
        try:
            return [doc async for doc in self.alert_outbox.find({}).sort("fired_at", ASCENDING).limit(limit)]
        except PyMongoError as exc:
            raise self._failure(exc) from None

    async def extend_leases(self, firing_ids: list[str], owner: str, until: dt.datetime) -> None:
        """Renews `owner`'s lease on the firings it is delivering (cryptoapp.alerts.delivery)."""
        try:
            await self.alert_outbox.update_many({"_id": {"$in": firing_ids}, "owner": owner},
                                                {"$set": {"lease_until": until}})
        except PyMongoError as exc:
            raise self._failure(exc) from None

    async def claim_firing(self, firing_id: str, seen: tuple, owner: str, until: dt.datetime) -> bool:
        """Makes `owner` the deliverer of an outbox firing if its (owner, lease_until) are still those `seen`
        (compare-and-set: of two workers claiming one firing, one wins); True when this call won."""
        was_owner, was_until = seen
        try:
            claimed = await self.alert_outbox.find_one_and_update(
                {"_id": firing_id, "owner": was_owner, "lease_until": was_until},
                {"$set": {"owner": owner, "lease_until": until}},  # no projection: FerretDB 1.24 refuses one here
                return_document=ReturnDocument.AFTER)
        except PyMongoError as exc:
            raise self._failure(exc) from None
        return claimed is not None

    async def delete_firings_before(self, cutoff: dt.datetime) -> int:
        """Deletes the finished firings (crypto.alerts) fired before `cutoff`; the outbox is never trimmed.
        Returns how many went."""
        try:
            return (await self.alerts.delete_many({"fired_at": {"$lt": cutoff}})).deleted_count
        except PyMongoError as exc:
            raise self._failure(exc) from None

    # --- forecasts (cryptoapp/forecasts): documents made by cryptoapp/forecasts/documents.py ----------

    async def write_forecasts(self, docs: list[dict]) -> int:
        """Stores the forecast documents not stored yet; returns how many were new.

        A forecast never changes once made (its `_id` names the bar it was made from), so one already
        stored (a bar replayed after a restart) is skipped: one unordered insert_many, where upserts would
        cost FerretDB a scan of the collection each."""
        if not docs:
            return 0
        collection = self._collection(FORECASTS)
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
            raise self._failure(exc) from None

    async def write_forecast_scores(self, docs: list[dict]) -> None:
        """Rewrites each score document in place (one per coin, model and horizon), in small commands."""
        updates = [UpdateOne({"_id": doc["_id"]}, {"$set": {k: v for k, v in doc.items() if k != "_id"}},
                             upsert=True) for doc in docs]
        scores = self._collection(FORECAST_SCORES)
        try:
            for start in range(0, len(updates), UPDATE_CHUNK):
                await scores.bulk_write(updates[start:start + UPDATE_CHUNK], ordered=False)
        except PyMongoError as exc:
            raise self._failure(exc) from None

    async def prune_forecasts(self, before: dt.datetime) -> int:
        """Deletes the forecasts whose target time is before `before`; their scores are kept in the scores.

        Keeps `crypto.forecasts` bounded by what the dashboard draws (FerretDB reads cost the collection)."""
        try:
            result = await self._collection(FORECASTS).delete_many({"target_at": {"$lt": before}})
        except PyMongoError as exc:
            raise self._failure(exc) from None
        return result.deleted_count

    async def coin_ticks(self, ticker: str, start: dt.datetime, end: dt.datetime,
                         sources: Iterable[str] = SEED_ID_SOURCES) -> list[dict]:
        """`ticker`'s stored ticks from `sources` (default: CoinGecko's series, the one forecasts learn from) with
        start <= timestamp < end, oldest first: timestamp, value, volume_24h, source."""
        try:
            cursor = self.prices.find({"sensor_id": ticker, "source": {"$in": sorted(sources)},
                                       "timestamp": {"$gte": start, "$lt": end}},
                                      {"_id": 0, "timestamp": 1, "value": 1, "volume_24h": 1, "source": 1}
                                      ).sort("timestamp", ASCENDING)
            return [doc async for doc in cursor]
        except PyMongoError as exc:
            raise self._failure(exc) from None

    # --- batch analytics (cryptoapp/analytics): reads of the archive, writes of the results ----------------

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
            raise self._failure(exc) from None

    async def _aggregates(self, pipeline: list[dict]) -> bool:
        """Whether the server runs `pipeline`: tried on an empty collection, so the answer costs nothing."""
        try:
            await (await self._collection(AGGREGATION_PROBE).aggregate(pipeline)).to_list()
        except OperationFailure as exc:
            if exc.code not in UNSUPPORTED_AGGREGATION_CODES:
                raise
            return False
        return True

    async def iter_ticks(self, ticker: str | None, start: dt.datetime | None = None, end: dt.datetime | None = None,
                         batch_size: int = 10_000) -> AsyncIterator[dict]:
        """Stored ticks with start <= timestamp < end (a bound that is None: no bound), of `ticker` (every coin
        when None), whole, in no set order: FerretDB sorts a whole match in memory before it sends the first
        document (over 30 s for 2.6 M ticks), and the export orders each day itself."""
        async for doc in self.ticks_between(start, end, None if ticker is None else [ticker], fields=None,
                                            batch_size=batch_size):
            yield doc

    async def sync_results(self, collection: str, docs: list[dict],
                           same: Callable[[dict, dict], bool] = operator.eq) -> tuple[int, int, int]:
        """Makes `collection` hold exactly `docs` (matched by their deterministic `_id`); (inserted, replaced, deleted).

        Idempotent and cheap to repeat: the stored documents are read once, new ones go in one insert_many,
        and only documents that differ (by `same`) are replaced one by one. An upsert per document would
        scan the collection once each on FerretDB (SQLite).
        """
        target = self._collection(collection)
        wanted = {doc["_id"]: doc for doc in docs}
        try:
            stored = {doc["_id"]: doc async for doc in target.find({})}
            new = [doc for key, doc in wanted.items() if key not in stored]
            changed = [doc for key, doc in wanted.items() if key in stored and not same(stored[key], doc)]
            gone = [key for key in stored if key not in wanted]
            if new:
                await target.insert_many(new, ordered=False)
            for start in range(0, len(changed), UPDATE_CHUNK):
                chunk = changed[start:start + UPDATE_CHUNK]
                await target.bulk_write([ReplaceOne({"_id": doc["_id"]}, doc) for doc in chunk], ordered=False)
            if gone:
                await target.delete_many({"_id": {"$in": gone}})
        except PyMongoError as exc:
            raise self._failure(exc) from None
        return len(new), len(changed), len(gone)

    async def record_analytics_run(self, run: dict) -> None:
        """Stores one analytics run's record (its `_id` is the run's time, so storing it twice keeps one)."""
        try:
            await self._collection(ANALYTICS_RUNS).replace_one({"_id": run["_id"]}, run, upsert=True)
        except PyMongoError as exc:
            raise self._failure(exc) from None
