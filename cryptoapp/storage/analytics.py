"""Batch analytics' storage (cryptoapp/analytics): reads of the archive for the export, writes of the results
(crypto.analytics_daily, crypto.analytics_correlation, crypto.analytics_runs)."""

from __future__ import annotations

import datetime as dt
import operator
from typing import AsyncIterator, Callable

from pymongo import ReplaceOne
from pymongo.errors import OperationFailure

from cryptoapp.schema import ANALYTICS_RUNS, PRICES, UNSUPPORTED_AGGREGATION_CODES, UTC
from cryptoapp.storage.base import Family, translated

AGGREGATION_PROBE = "aggregation_probe"  # never written: asking it what the server can do costs nothing


class Analytics(Family):
    """What the export reads (analytics.export.TickReader) and the loader writes (analytics.load.ResultWriter)."""

    @translated
    async def tick_days(self, since: dt.datetime | None = None) -> dict[tuple[str, dt.date], int]:
        """How many ticks each (ticker, UTC day) holds, for days from `since` on (all days when None).

        MongoDB counts them on the server in one $group. FerretDB 1.x has no date operator in $group
        (NotImplemented; asked once, on an empty collection, since it may read the whole archive before
        saying so), so there the tickers and times alone are streamed and counted here: one pass over the
        collection, which is what any query costs on that server.
        """
        prices = self.collection(PRICES)
        match = {"timestamp": {"$gte": since}} if since is not None else {}
        day = {"$dateToString": {"format": "%Y-%m-%d", "date": "$timestamp", "timezone": "UTC"}}
        pipeline = [{"$match": match}, {"$group": {"_id": {"t": "$sensor_id", "d": day}, "n": {"$sum": 1}}}]
        counts: dict[tuple[str, dt.date], int] = {}
        if await self._aggregates(pipeline):
            async for row in await prices.aggregate(pipeline):
                key = row["_id"]
                if isinstance(key.get("t"), str) and isinstance(key.get("d"), str):
                    counts[(key["t"], dt.date.fromisoformat(key["d"]))] = int(row["n"])
            return counts
        async for doc in prices.find(match, {"_id": 0, "sensor_id": 1, "timestamp": 1}, batch_size=10_000):
            ticker, ts = doc.get("sensor_id"), doc.get("timestamp")
            if isinstance(ticker, str) and isinstance(ts, dt.datetime):
                key = (ticker, ts.astimezone(UTC).date())
                counts[key] = counts.get(key, 0) + 1
        return counts

    async def _aggregates(self, pipeline: list[dict]) -> bool:
        """Whether the server runs `pipeline`: tried on an empty collection, so the answer costs nothing."""
        try:
            await (await self.collection(AGGREGATION_PROBE).aggregate(pipeline)).to_list()
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
        async for doc in self.store.ticks.ticks_between(start, end, None if ticker is None else [ticker],
                                                        fields=None, batch_size=batch_size):
            yield doc

    @translated
    async def sync_results(self, collection: str, docs: list[dict],
                           same: Callable[[dict, dict], bool] = operator.eq) -> tuple[int, int, int]:
        """Makes `collection` hold exactly `docs` (matched by their deterministic `_id`); (inserted, replaced, deleted).

        Idempotent and cheap to repeat: the stored documents are read once, new ones go in one insert_many,
        and only documents that differ (by `same`) are replaced one by one. An upsert per document would
        scan the collection once each on FerretDB (SQLite).
        """
        target = self.collection(collection)
        wanted = {doc["_id"]: doc for doc in docs}
        stored = {doc["_id"]: doc async for doc in target.find({})}
        new = [doc for key, doc in wanted.items() if key not in stored]
        changed = [doc for key, doc in wanted.items() if key in stored and not same(stored[key], doc)]
        gone = [key for key in stored if key not in wanted]
        if new:
            await target.insert_many(new, ordered=False)
        await self.bulk_write(target, [ReplaceOne({"_id": doc["_id"]}, doc) for doc in changed])
        if gone:
            await target.delete_many({"_id": {"$in": gone}})
        return len(new), len(changed), len(gone)

    @translated
    async def record_analytics_run(self, run: dict) -> None:
        """Stores one analytics run's record (its `_id` is the run's time, so storing it twice keeps one)."""
        await self.collection(ANALYTICS_RUNS).replace_one({"_id": run["_id"]}, run, upsert=True)
