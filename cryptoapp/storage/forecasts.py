"""The forecasts' collections (crypto.forecasts, crypto.forecast_scores; documents made by
cryptoapp/forecasts/documents.py), and the archive's ticks a backtest learns from."""

from __future__ import annotations

import datetime as dt
from typing import Iterable

from pymongo import ASCENDING, UpdateOne

from cryptoapp.schema import FORECAST_SCORES, FORECASTS, FORECASTS_INDEXES, PRICES, SEED_ID_SOURCES
from cryptoapp.storage.base import Family, translated


class Forecasts(Family):
    """Forecasts inserted once each and pruned by target time; scores rewritten in place."""

    INDEXES = {FORECASTS: FORECASTS_INDEXES}

    @translated
    async def write_forecasts(self, docs: list[dict]) -> int:
        """Stores the forecast documents not stored yet; returns how many were new.

        A forecast never changes once made (its `_id` names the bar it was made from), so one already
        stored (a bar replayed after a restart) is skipped (Family.insert_new)."""
        if not docs:
            return 0
        await self.indexed()
        return len((await self.insert_new(self.collection(FORECASTS), docs, "forecasts")).new)

    @translated
    async def write_forecast_scores(self, docs: list[dict]) -> None:
        """Rewrites each score document in place (one per coin, model and horizon), in small commands."""
        updates = [UpdateOne({"_id": doc["_id"]}, {"$set": {k: v for k, v in doc.items() if k != "_id"}},
                             upsert=True) for doc in docs]
        await self.bulk_write(self.collection(FORECAST_SCORES), updates)

    @translated
    async def prune_forecasts(self, before: dt.datetime) -> int:
        """Deletes the forecasts whose target time is before `before`; their scores are kept in the scores.

        Keeps `crypto.forecasts` bounded by what the dashboard draws (FerretDB reads cost the collection)."""
        return (await self.collection(FORECASTS).delete_many({"target_at": {"$lt": before}})).deleted_count

    @translated
    async def coin_ticks(self, ticker: str, start: dt.datetime, end: dt.datetime,
                         sources: Iterable[str] = SEED_ID_SOURCES) -> list[dict]:
        """`ticker`'s stored ticks from `sources` (default: CoinGecko's series, the one forecasts learn from) with
        start <= timestamp < end, oldest first: timestamp, value, volume_24h, source."""
        cursor = self.collection(PRICES).find({"sensor_id": ticker, "source": {"$in": sorted(sources)},
                                               "timestamp": {"$gte": start, "$lt": end}},
                                              {"_id": 0, "timestamp": 1, "value": 1, "volume_24h": 1, "source": 1}
                                              ).sort("timestamp", ASCENDING)
        return [doc async for doc in cursor]
