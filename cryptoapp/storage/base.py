"""What every family of collections shares: the one client, driver errors as StorageError, declared indexes, the
insert-if-absent write and the retry-until-written loop."""

from __future__ import annotations

import contextlib
import functools
import inspect
import logging
from dataclasses import dataclass, field
from typing import Any, ClassVar

from mode import Service
from pymongo import AsyncMongoClient
from pymongo.errors import BulkWriteError, PyMongoError
from tenacity import AsyncRetrying, retry_if_exception_type, wait_exponential_jitter

from cryptoapp.uris import mask_uri

log = logging.getLogger(__name__)
# FerretDB 1.24 (SQLite) keeps one pooled connection open per matched update until the whole command ends and
# deadlocks at its pool size of 100, so updates go in commands of this many.
UPDATE_CHUNK = 50
DUPLICATE_KEY = 11000
# Per-document write errors that pass (a primary stepping down, a server shutting down): retried.
# Any other per-document error is the document's own fault and retrying it would block the stream.
TRANSIENT_WRITE_ERRORS = {6, 7, 89, 91, 189, 262, 9001, 10107, 11600, 11602, 13435, 13436}
# A collection's indexes: ((keys as (field, 1 ascending | -1 descending), ...), index name) pairs (cryptoapp.schema).
Indexes = tuple[tuple[tuple[tuple[str, int], ...], str], ...]


class StorageError(Exception):
    """A write that did not reach MongoDB; the message names the server and the cause."""


def failure(where: str, exc: PyMongoError) -> StorageError:
    return StorageError(f"MongoDB at {where} failed: {exc.__class__.__name__}: "
                        f"{str(exc).splitlines()[0][:200]}; is it running? (make services)")


def translated(method):
    """The method (a coroutine or an async generator of a Family) raises StorageError where the driver failed."""
    if inspect.isasyncgenfunction(method):
        @functools.wraps(method)
        async def generator(self, *args, **kwargs):
            try:
                async with contextlib.aclosing(method(self, *args, **kwargs)) as items:
                    async for item in items:
                        yield item
            except PyMongoError as exc:
                raise failure(self.where, exc) from None
        return generator

    @functools.wraps(method)
    async def coroutine(self, *args, **kwargs):
        try:
            return await method(self, *args, **kwargs)
        except PyMongoError as exc:
            raise failure(self.where, exc) from None
    return coroutine


class StoreBase(Service):
    """One MongoDB client per process, opened and closed with it, shared by the families of collections."""

    def __init__(self, uri: str, database: str, socket_timeout_s: float = 30.0, **kwargs):
        """`socket_timeout_s`: the longest wait for one answer; batch reads of the archive need more
        (a filtered read on FerretDB scans the whole collection before its first document)."""
        super().__init__(**kwargs)
        self.uri = uri
        self.database = database
        self.socket_timeout_s = socket_timeout_s
        self.client: AsyncMongoClient | None = None
        self._indexed: set[str] = set()  # the collections whose declared indexes this process created

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

    def collection(self, name: str):
        assert self.client is not None, f"{type(self).__name__} used before start"
        return self.client[self.database][name]

    async def ensure_indexes(self, declared: dict[str, Indexes]) -> None:
        """Creates the `declared` indexes of each collection once per process (create_index is idempotent)."""
        for name, indexes in declared.items():
            if name in self._indexed:
                continue
            for keys, index in indexes:
                await self.collection(name).create_index(list(keys), name=index)
            self._indexed.add(name)

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


@dataclass
class Inserted:
    """What an insert-if-absent did, by _id: written now, stored already, refused for good (see insert_new)."""
    new: list[Any] = field(default_factory=list)
    existing: list[Any] = field(default_factory=list)
    refused: dict[Any, str] = field(default_factory=dict)


class Family:
    """Some collections of the store, with their indexes declared beside them, on the store's client."""

    # Collection -> its indexes, created before the family's first write rather than at start: connecting is
    # lazy, so a server that is down as the worker starts only delays that write.
    INDEXES: ClassVar[dict[str, Indexes]] = {}

    def __init__(self, store: StoreBase):
        self.store = store

    @property
    def where(self) -> str:
        return self.store.where

    def collection(self, name: str):
        return self.store.collection(name)

    async def indexed(self) -> None:
        """The family's declared indexes exist (cheap after the first call)."""
        await self.store.ensure_indexes(self.INDEXES)

    async def insert_new(self, collection, docs: list[dict], what: str, refusable: bool = False) -> Inserted:
        """Inserts `docs` in one unordered insert_many: those whose _id is stored already are reported, not written.

        An upsert per document would do the same, but FerretDB (SQLite) runs each as a lookup plus a transaction,
        tens of milliseconds apiece, where a batch insert takes milliseconds. Any other per-document error raises
        StorageError (`what`: the documents' name in its message), unless `refusable`: then only a transient
        one does and the others come back in `refused` with the reason. A write concern error always raises.
        """
        if not docs:
            return Inserted()
        try:
            await collection.insert_many(docs, ordered=False)
            return Inserted(new=[doc["_id"] for doc in docs])
        except BulkWriteError as exc:
            errors: list[dict] = exc.details.get("writeErrors", [])
            concern: list[dict] = exc.details.get("writeConcernErrors") or []
        others = [e for e in errors if e.get("code") != DUPLICATE_KEY]
        fatal = [e for e in others if not refusable or e.get("code") in TRANSIENT_WRITE_ERRORS]
        if fatal or concern:
            first = (fatal or concern)[0]
            raise StorageError(f"{len(fatal) or len(concern)} of {len(docs)} {what} not stored at {self.where}: "
                               f"code {first.get('code')}: {first.get('errmsg')}")
        failed = {e["index"] for e in errors}
        return Inserted(new=[doc["_id"] for i, doc in enumerate(docs) if i not in failed],
                        existing=[docs[e["index"]]["_id"] for e in errors if e.get("code") == DUPLICATE_KEY],
                        refused={docs[e["index"]]["_id"]: f"MongoDB refused it: code {e.get('code')}: {e.get('errmsg')}"
                                 for e in others})

    async def bulk_write(self, collection, requests: list) -> None:
        """Writes `requests` unordered, in small commands (FerretDB: see UPDATE_CHUNK)."""
        for start in range(0, len(requests), UPDATE_CHUNK):
            await collection.bulk_write(requests[start:start + UPDATE_CHUNK], ordered=False)
