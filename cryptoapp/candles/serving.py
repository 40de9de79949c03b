"""Writes the serving views: the rings of a series, held in memory by the worker that owns it, saved when changed.

Each save names the revision it was read at; when someone else wrote the view meanwhile (a `candles rebuild`,
the worker that owned the series before a rebalance), the save is refused, the view reloaded and the change
applied again, so no writer ever overwrites what it did not read.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Iterable
from typing import Union

from cryptoapp.candles.models import Bar
from cryptoapp.candles.rings import RING_NUMBERS, BarRing, TickRing, view_id
from cryptoapp.prices.models import PriceTick
from cryptoapp.schema import SEED_ID_SOURCES, UTC, series_id

log = logging.getLogger(__name__)

Ring = Union[BarRing, TickRing]
SAVE_TRIES = 5


class ViewWriter:
    """The rings this process writes, cached by view id, on `store`: the candles storage (PriceStore.candles)."""

    def __init__(self, store):
        self.store = store
        self.rings: dict[str, Ring] = {}

    async def _load(self, ident: str, empty: Callable[[], Ring]) -> Ring:
        doc = await self.store.load_view(ident)
        if doc is None:
            return empty()
        return (TickRing if doc["kind"] == "ticks" else BarRing).from_document(doc)

    async def update(self, ident: str, empty: Callable[[], Ring], change: Callable[[Ring], bool]) -> bool:
        """Applies `change` to the view and saves it if it changed; returns whether it was saved."""
        ring = self.rings.get(ident) or await self._load(ident, empty)
        for _ in range(SAVE_TRIES):
            if not change(ring):
                self.rings[ident] = ring
                return False
            doc = ring.document(dt.datetime.now(UTC))
            doc["rev"] = ring.rev + 1
            if await self.store.save_view(doc, ring.rev):
                ring.rev += 1
                self.rings[ident] = ring
                return True
            ring = await self._load(ident, empty)  # written by someone else since we read it
        raise RuntimeError(f"view {ident} kept changing under this writer ({SAVE_TRIES} tries)")

    async def put_bars(self, bars: Iterable[Bar]) -> int:
        """Each bar into its series' ring of its resolution; returns how many views were saved."""
        by_view: dict[str, list[Bar]] = {}
        for bar in bars:
            by_view.setdefault(view_id(bar.series, bar.resolution), []).append(bar)
        saved = 0
        for ident, group in by_view.items():
            first = group[0]
            source = first.own_source
            saved += await self.update(
                ident, lambda: BarRing(first.series, first.ticker, first.resolution, first.currency, source),
                lambda ring: any([ring.put(bar) for bar in group]))
        return saved

    async def put_ticks(self, ticks: Iterable[PriceTick]) -> int:
        """Each tick into its series' ring of recent ticks; returns how many views were saved."""
        by_series: dict[str, list[PriceTick]] = {}
        for tick in ticks:
            by_series.setdefault(series_id(tick.ticker, tick.source), []).append(tick)
        saved = 0
        for series, group in by_series.items():
            first = group[0]
            rows = [(round(t.timestamp.timestamp() * 1000), tuple(getattr(t, name) for name in RING_NUMBERS), t.source,
                     t.granularity) for t in group]
            saved += await self.put_rows(series, first.ticker, first.currency, first.source, rows)
        return saved

    async def put_rows(self, series: str, ticker: str, currency: str, source: str, rows: list[tuple]) -> int:
        """Rows (time in ms, numbers in RING_NUMBERS order, source, granularity) of one series into its ring of recent
        ticks, saved once if they changed it; returns 1 when saved."""
        own = None if source in SEED_ID_SOURCES else source
        return int(await self.update(view_id(series, "ticks"), lambda: TickRing(series, ticker, currency, own),
                                     lambda ring: any([ring.add_values(*row) for row in rows])))

    def forget(self) -> None:
        """Drops the cached rings (after a rebalance: the next write reloads what it needs)."""
        self.rings.clear()

