"""The candles' collections: closed bars (crypto.candles) and the serving views the dashboard reads (crypto.views)."""

from __future__ import annotations

import datetime as dt
from typing import Any, Iterable, Optional

from pymongo import ReplaceOne
from pymongo.errors import DuplicateKeyError

from cryptoapp.candles.bars import Bar
from cryptoapp.candles.view_docs import with_tail
from cryptoapp.schema import CANDLES, CANDLES_INDEXES, UTC, VIEW_TAILS, VIEWS
from cryptoapp.storage.base import Family, translated

REBUILD_CHUNK = 10_000  # candles per insert of a rebuild


async def _save_over(collection, doc: dict, held_rev: int) -> bool:
    """Inserts `doc` (held_rev 0) or replaces the stored one if it is still at `held_rev`; False if it was not."""
    try:
        if held_rev == 0:
            await collection.insert_one(doc)
            return True
        result = await collection.replace_one({"_id": doc["_id"], "rev": held_rev}, doc)
        return result.matched_count == 1
    except DuplicateKeyError:
        return False


class Candles(Family):
    """Bars written idempotently by candle id; views written only over the revision their writer read."""

    INDEXES = {CANDLES: CANDLES_INDEXES}

    @property
    def candles(self):
        return self.collection(CANDLES)

    @property
    def views(self):
        return self.collection(VIEWS)

    @property
    def tails(self):
        return self.collection(VIEW_TAILS)

    @translated
    async def store_candles(self, bars: Iterable[Bar]) -> int:
        """Writes closed bars idempotently (insert; a bar already stored is replaced only when it differs, as
        after a late tick); returns how many documents were written."""
        now = dt.datetime.now(UTC)
        by_id = {bar.id: bar for bar in bars}
        docs = {bar_id: bar.document(now) for bar_id, bar in by_id.items()}
        if not docs:
            return 0
        await self.indexed()
        existing = (await self.insert_new(self.candles, list(docs.values()), "candles")).existing
        if not existing:
            return len(docs)
        stored = {doc["_id"]: doc async for doc in self.candles.find({"_id": {"$in": existing}})}
        changed = [ReplaceOne({"_id": i}, docs[i]) for i in existing
                   if i not in stored or not by_id[i].same_values(stored[i])]
        await self.bulk_write(self.candles, changed)
        return len(docs) - len(existing) + len(changed)

    @translated
    async def stored_candles(self, since: dt.datetime, until: dt.datetime, series: Optional[Iterable[str]] = None):
        """Stored candles with since <= start < until (of some series), for `cryptoapp candles verify`."""
        query: dict[str, Any] = {"start": {"$gte": since, "$lt": until}}
        if series is not None:
            query["series"] = {"$in": list(series)}
        async for doc in self.candles.find(query):
            yield doc

    @translated
    async def replace_candles(self, bars: Iterable[Bar], since: dt.datetime, until: dt.datetime,
                              series: Iterable[str]) -> int:
        """The candles of `series` with since <= start < until become exactly `bars` (`cryptoapp candles rebuild`):
        one delete and batch inserts, no per-bar lookup (each would read the whole collection on FerretDB)."""
        now = dt.datetime.now(UTC)
        docs = [bar.document(now) for bar in bars]
        await self.indexed()
        await self.candles.delete_many({"series": {"$in": list(series)}, "start": {"$gte": since, "$lt": until}})
        for start in range(0, len(docs), REBUILD_CHUNK):
            await self.candles.insert_many(docs[start:start + REBUILD_CHUNK], ordered=False)
        return len(docs)

    @translated
    async def trim_candles(self, kept_from: dict[str, Optional[float]]) -> int:
        """Removes the candles older than their resolution's retention (Unix seconds per resolution)."""
        removed = 0
        for res, since in kept_from.items():
            if since is not None:
                start = dt.datetime.fromtimestamp(since, UTC)
                result = await self.candles.delete_many({"resolution": res, "start": {"$lt": start}})
                removed += result.deleted_count
        return removed

    @translated
    async def load_view(self, view_id: str) -> Optional[dict]:
        return await self.views.find_one({"_id": view_id})

    @translated
    async def load_view_tail(self, view_id: str) -> Optional[dict]:
        return await self.tails.find_one({"_id": view_id})

    async def current_view(self, view_id: str) -> Optional[dict]:
        """The view as readers see it: its document with its tail's newer changes in it."""
        doc = await self.load_view(view_id)
        return with_tail(doc, await self.load_view_tail(view_id)) if doc else doc

    @translated
    async def save_view(self, doc: dict, held_rev: int) -> bool:
        """Writes a view if the stored one is still at `held_rev` (0: none stored); False when another writer (a
        rebuild, the worker that owned the series before a rebalance) got there first: reload and apply again."""
        return await _save_over(self.views, doc, held_rev)

    @translated
    async def save_view_tail(self, doc: dict, held_rev: int) -> bool:
        """save_view for a ticks ring's tail (its newest ticks, over the ring revision in doc["base_rev"])."""
        return await _save_over(self.tails, doc, held_rev)

    @translated
    async def has_views(self) -> bool:
        return await self.views.find_one({}, {"_id": 1}) is not None  # no filter: FerretDB reads one row
