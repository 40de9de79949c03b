"""Writes the serving views: the rings of a series, held in memory by the worker that owns it, saved when changed.

Each save names the revision it was read at; when someone else wrote the view meanwhile (a `candles rebuild`,
the worker that owned the series before a rebalance), the save is refused, the view reloaded and the change
applied again, so no writer ever overwrites what it did not read.

A ring's newest changes (ticks, or bars by slot) go into its tail, a small document over the ring's revision,
until TAIL_SIZE have come; then the ring is saved whole and its tail emptied over the new revision.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections.abc import Callable, Iterable
from typing import Union

from cryptoapp.candles.models import Bar
from cryptoapp.candles.rings import RING_NUMBERS, TAIL_SIZE, BarRing, TickRing, view_id
from cryptoapp.candles.view_docs import tail_extends
from cryptoapp.prices.models import PriceTick
from cryptoapp.schema import SEED_ID_SOURCES, UTC, series_id

log = logging.getLogger(__name__)

Ring = Union[BarRing, TickRing]
SAVE_TRIES = 5


@dataclasses.dataclass
class Tail:
    """What a ring holds beyond its saved document (tick rows, or bar slots), and the tail document's revision."""

    rows: list[tuple] = dataclasses.field(default_factory=list)
    rev: int = 0


class ViewWriter:
    """The rings this process writes, cached by view id, on `store`: the candles storage (PriceStore.candles)."""

    def __init__(self, store):
        self.store = store
        self.rings: dict[str, Ring] = {}
        self.tails: dict[str, Tail] = {}

    async def _load(self, ident: str, empty: Callable[[], Ring]) -> Ring:
        doc = await self.store.load_view(ident)
        ring = empty() if doc is None else (TickRing if doc["kind"] == "ticks" else BarRing).from_document(doc)
        stored = await self.store.load_view_tail(ident)
        tail = self.tails[ident] = Tail(rev=int(stored["rev"]) if stored else 0)
        if tail_extends(doc, stored):
            tail.rows = ring.absorb_tail(stored)[0]
        return ring

    async def update(self, ident: str, empty: Callable[[], Ring], change: Callable[[Ring], bool]) -> bool:
        """Applies `change` to the view and saves it whole if it changed (a rebuild); returns whether it was saved."""
        ring = self.rings.get(ident) or await self._load(ident, empty)
        for _ in range(SAVE_TRIES):
            if not change(ring):
                self.rings[ident] = ring
                return False
            if await self._save_ring(ident, ring):
                self.rings[ident] = ring
                return True
            ring = await self._load(ident, empty)  # written by someone else since we read it
        raise RuntimeError(f"view {ident} kept changing under this writer ({SAVE_TRIES} tries)")

    async def put_bars(self, bars: Iterable[Bar]) -> int:
        """Each bar into its series' ring of its resolution; returns how many views were saved."""
        groups = _grouped(bars, lambda bar: view_id(bar.series, bar.resolution))
        return sum([await self._put_bars(ident, group) for ident, group in groups.items()])

    async def _put_bars(self, ident: str, bars: list[Bar]) -> int:
        first = bars[0]
        return await self._put(
            ident, lambda: BarRing(first.series, first.ticker, first.resolution, first.currency, first.own_source),
            lambda ring: [ring.slot(bar.start.timestamp()) for bar in bars if ring.put(bar)])

    async def put_ticks(self, ticks: Iterable[PriceTick]) -> int:
        """Each tick into its series' ring of recent ticks; returns how many views were saved."""
        groups = _grouped(ticks, lambda tick: series_id(tick.ticker, tick.source))
        return sum([await self.put_rows(series, group[0].ticker, group[0].currency, group[0].source, _rows(group))
                    for series, group in groups.items()])

    async def put_rows(self, series: str, ticker: str, currency: str, source: str, rows: list[tuple]) -> int:
        """Rows (time in ms, numbers in RING_NUMBERS order, source, granularity) of one series into its ring of recent
        ticks, saved once if they changed it; returns 1 when saved."""
        own = None if source in SEED_ID_SOURCES else source
        return await self._put(view_id(series, "ticks"), lambda: TickRing(series, ticker, currency, own),
                               lambda ring: [row for row in rows if ring.add_values(*row)])

    async def _put(self, ident: str, empty: Callable[[], Ring], change: Callable[[Ring], list]) -> int:
        """Applies `change` (returning what it changed: tick rows, bar slots) and saves it once, in the view's tail,
        or the ring whole when the tail is full; returns 1 when saved."""
        for _ in range(SAVE_TRIES):
            ring = self.rings.get(ident) or await self._load(ident, empty)
            tail = self.tails.setdefault(ident, Tail())
            changed = change(ring)
            if not changed:
                self.rings[ident] = ring
                return 0
            pending = list(dict.fromkeys(tail.rows + changed))
            if ring.rev and len(pending) <= TAIL_SIZE:
                saved = await self._save_tail(ident, ring, pending, tail)
            else:
                saved = await self._save_ring(ident, ring)
            if saved:
                self.rings[ident] = ring
                return 1
            self.rings.pop(ident, None)  # written by someone else since we read it: reload, apply again
        raise RuntimeError(f"view {ident} kept changing under this writer ({SAVE_TRIES} tries)")

    async def _save_ring(self, ident: str, ring: Ring) -> bool:
        """Saves the ring whole; its tail is then emptied over the new revision, so that a writer still holding the
        old tail is refused and reloads. A tail another writer saved meanwhile is taken in first."""
        if not await self._save_document(ring):
            return False
        tail = self.tails.setdefault(ident, Tail())
        for _ in range(SAVE_TRIES):
            if await self._save_tail(ident, ring, [], tail):
                return True
            stored = await self.store.load_view_tail(ident)
            tail.rev = int(stored["rev"]) if stored else 0
            if stored and ring.absorb_tail(stored)[1] and not await self._save_document(ring):
                return False
        raise RuntimeError(f"the tail of view {ident} kept changing under this writer ({SAVE_TRIES} tries)")

    async def _save_document(self, ring: Ring) -> bool:
        doc = ring.document(dt.datetime.now(UTC))
        doc["rev"] = ring.rev + 1
        if not await self.store.save_view(doc, ring.rev):
            return False
        ring.rev += 1
        return True

    async def _save_tail(self, ident: str, ring: Ring, pending: list, tail: Tail) -> bool:
        doc = {**ring.tail_document(pending, dt.datetime.now(UTC)), "_id": ident, "rev": tail.rev + 1,
               "base_rev": ring.rev}
        if not await self.store.save_view_tail(doc, tail.rev):
            return False
        tail.rev, tail.rows = tail.rev + 1, pending
        return True

    def forget(self) -> None:
        """Drops the cached rings (after a rebalance: the next write reloads what it needs)."""
        self.rings.clear()
        self.tails.clear()


def _grouped(items: Iterable, key: Callable) -> dict[str, list]:
    """`items` by `key(item)`, each group in the items' order."""
    groups: dict[str, list] = {}
    for item in items:
        groups.setdefault(key(item), []).append(item)
    return groups


def _rows(ticks: list[PriceTick]) -> list[tuple]:
    """Ticks as a tick ring's rows: (time in ms, numbers in RING_NUMBERS order, source, granularity)."""
    return [(round(t.timestamp.timestamp() * 1000), tuple(getattr(t, name) for name in RING_NUMBERS), t.source,
             t.granularity) for t in ticks]
