"""Candles and views recomputed from the archive: `cryptoapp candles verify` compares, `rebuild` repairs.

The archive (crypto.prices) is the system of record; every derived view can be made again from it. Bars are
recomputed with the same functions the stream uses (cryptoapp.candles.bars), from whole days, so the coarse bars
of the first day are complete too.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import heapq
import logging
import math
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Optional

from cryptoapp.candles.bars import BarAccumulator, StoredTick
from cryptoapp.candles.models import Bar
from cryptoapp.candles.rings import BAR_ARRAYS, RING_SIZE, TICK_RING_SIZE, BarRing, TickRing, view_id
from cryptoapp.candles.serving import ViewWriter
from cryptoapp.prices.models import PriceTick
from cryptoapp.schema import CANDLE_RETENTION_DAYS, RESOLUTIONS, UTC, bar_start, series_id
from cryptoapp.storage.ticks import from_document

log = logging.getLogger(__name__)

# A bar counts as stored once it is closed and the worker had time to write it: the clock's period plus the
# views' batch window, with room to spare.
WRITE_DELAY_S = 30.0


@dataclasses.dataclass
class Recomputed:
    ticks: int = 0
    bars: dict[str, Bar] = dataclasses.field(default_factory=dict)
    newest: dict[str, list] = dataclasses.field(default_factory=dict)   # series -> heap of (ms, n, document)

    def series(self) -> list[str]:
        return sorted({bar.series for bar in self.bars.values()})

    def newest_ticks(self, series: str) -> list[PriceTick]:
        return [from_document(doc) for _, _, doc in sorted(self.newest.get(series, []))]


def day_start(ts: dt.datetime) -> dt.datetime:
    return bar_start(ts, "1d")


def retention_starts(now: float) -> dict[str, Optional[float]]:
    """The oldest bar start crypto.candles keeps per resolution (schema.CANDLE_RETENTION_DAYS), in Unix seconds."""
    return {res: None if days is None else now - days * 86400 for res, days in CANDLE_RETENTION_DAYS.items()}


async def recompute(store, since: Optional[dt.datetime], until: Optional[dt.datetime],
                    tickers: Optional[Iterable[str]] = None) -> Recomputed:
    """Every bar (within crypto.candles' retention) of the archive's ticks in [since, until), and each series'
    newest ticks: one read of the archive, holding bars, never the ticks."""
    out = Recomputed()
    bars = BarAccumulator(since=retention_starts(time.time()))
    async for doc in store.ticks.ticks_between(since, until, tickers):
        tick = StoredTick.from_document(doc)
        if tick is None:
            continue
        bars.add(tick)
        heap = out.newest.setdefault(series_id(tick.ticker, tick.source), [])
        entry = (round(tick.timestamp.timestamp() * 1000), out.ticks, doc)
        out.ticks += 1
        if len(heap) < TICK_RING_SIZE:
            heapq.heappush(heap, entry)
        elif entry > heap[0]:
            heapq.heapreplace(heap, entry)
    out.bars = bars.bars()
    return out


def is_closed(bar: Bar, now: float, grace_s: float) -> bool:
    return bar.end.timestamp() + grace_s <= now


@dataclasses.dataclass
class RebuildReport:
    ticks: int
    candles: int
    views: int
    series: list[str]


async def rebuild(store, *, since: Optional[dt.datetime] = None, until: Optional[dt.datetime] = None,
                  tickers: Optional[Iterable[str]] = None, grace_s: float,
                  replay: Optional[Callable[[list[PriceTick]], Awaitable[None]]] = None,
                  replay_since: Optional[dt.datetime] = None, say: Callable[..., None] = log.info) -> RebuildReport:
    """Makes crypto.candles and the views of [since, until) (default: everything) exactly what the archive gives.

    Without `since` the views are written afresh; with it, the recomputed bars go into the views as they are. The
    ticks after `replay_since` go to `replay` too, for a running worker's open bars.
    """
    began = time.monotonic()
    since = day_start(since) if since else None
    say("candles rebuild: reading the archive%s", f" since {since:%Y-%m-%d %H:%M} UTC" if since else "")
    rec = await recompute(store, since, until, tickers)
    series = rec.series()
    now = time.time()
    closed = [bar for bar in rec.bars.values() if is_closed(bar, now, grace_s)]
    low = since or dt.datetime(1970, 1, 1, tzinfo=UTC)
    high = until or dt.datetime.now(UTC) + dt.timedelta(days=1)
    candles = await store.candles.replace_candles(closed, low, high, series)
    writer = ViewWriter(store.candles)
    fresh = since is None
    saved = 0
    for s in series:
        bars = [bar for bar in rec.bars.values() if bar.series == s]
        first = bars[0]
        source = first.own_source
        for res in RESOLUTIONS:
            group = [bar for bar in bars if bar.resolution == res]
            saved += await writer.update(
                view_id(s, res), lambda: BarRing(s, first.ticker, res, first.currency, source),
                lambda ring: (_reset(ring) if fresh else False) | any([ring.put(bar) for bar in group]))
        ticks = rec.newest_ticks(s)
        if fresh:
            saved += await writer.update(view_id(s, "ticks"), lambda: TickRing(s, first.ticker, first.currency, source),
                                         lambda ring: _reset(ring) | True)
        saved += await writer.put_ticks(ticks)
        await store.ticks.save_latest(ticks[-1:])
        if replay is not None and replay_since is not None:
            await replay([t for t in ticks if t.timestamp >= replay_since])
    say("candles rebuild: %d ticks -> %d closed candles, %d views of %d series in %.0f s", rec.ticks, candles, saved,
        len(series), time.monotonic() - began)
    return RebuildReport(rec.ticks, candles, saved, series)


def _reset(ring) -> bool:
    if isinstance(ring, TickRing):
        had = bool(ring.ticks)
        ring.ticks.clear()
        return had
    had = any(not math.isnan(t) for t in ring.arrays["t"])
    for name in (*BAR_ARRAYS, "src"):
        ring.arrays[name] = [math.nan] * RING_SIZE[ring.resolution]
    return had


async def verify(store, *, since: dt.datetime, until: Optional[dt.datetime] = None,
                 tickers: Optional[Iterable[str]] = None, grace_s: float) -> tuple[int, list[str]]:
    """(bars compared, mismatches): the closed bars since `since` (from the start of its day) that crypto.candles
    or the views hold differently from the archive's recomputation, or lack, or hold without cause."""
    since = day_start(since)
    rec = await recompute(store, since, until, tickers)
    now = time.time() - WRITE_DELAY_S
    expected = {bar.id: bar for bar in rec.bars.values() if bar.start >= since and is_closed(bar, now, grace_s)}
    series = rec.series() if tickers is None else None
    stored = {doc["_id"]: doc
              async for doc in store.candles.stored_candles(since, until or dt.datetime.now(UTC), series)}
    # An exchange series whose bars its trades make is checked against the exchange (--against-exchange), not the
    # archive's ticks.
    by_trades = {doc["series"] for doc in stored.values() if doc.get("provenance", "ticks") != "ticks"}
    expected = {ident: bar for ident, bar in expected.items() if bar.series not in by_trades}
    stored = {ident: doc for ident, doc in stored.items() if doc.get("series") not in by_trades}
    problems = []
    for ident, bar in sorted(expected.items()):
        doc = stored.get(ident)
        if doc is None:
            problems.append(f"{ident}: missing from crypto.candles (the archive has {bar.ticks} ticks in it)")
        elif not bar.same_values(doc):
            problems.append(f"{ident}: crypto.candles has {_ohlc(doc)}, the archive gives {_ohlc(bar.document(None))}")
    kept_from = retention_starts(time.time())
    for ident, doc in sorted(stored.items()):
        end = doc["start"] + dt.timedelta(seconds=RESOLUTIONS[doc["resolution"]])
        if (kept_from[doc["resolution"]] or 0) > doc["start"].timestamp():
            continue  # past retention: the worker's hourly trim removes it
        if ident not in expected and end.timestamp() + grace_s <= now and doc["start"] >= since and \
                (tickers is None or doc["sensor_id"] in set(tickers)):
            problems.append(f"{ident}: in crypto.candles but the archive has no tick in it")
    problems += await _verify_views(store, expected, since)
    return len(expected), problems


def _ohlc(doc: dict) -> str:
    return (f"open {doc['open']:.10g} high {doc['high']:.10g} low {doc['low']:.10g} close {doc['close']:.10g} "
            f"ticks {doc['ticks']}")


async def _verify_views(store, expected: dict[str, Bar], since: dt.datetime) -> list[str]:
    """The rings against the same bars, for the bars still inside each ring."""
    problems = []
    wanted: dict[str, list[Bar]] = {}
    for bar in expected.values():
        wanted.setdefault(view_id(bar.series, bar.resolution), []).append(bar)
    for ident, bars in sorted(wanted.items()):
        doc = await store.candles.current_view(ident)
        if doc is None:
            problems.append(f"view {ident}: missing (the archive gives {len(bars)} closed bars)")
            continue
        ring = BarRing.from_document(doc)
        oldest_kept = max(bars, key=lambda b: b.start).start - dt.timedelta(
            seconds=RESOLUTIONS[ring.resolution] * (ring.size - 1))
        held = {row["timestamp"]: row for row in ring.rows(start=since)}
        for bar in bars:
            if bar.start < oldest_kept:
                continue
            row = held.get(bar.start)
            values = (bar.open, bar.high, bar.low, bar.close, bar.ticks)
            if row is None or (row["open"], row["high"], row["low"], row["close"], row["ticks"]) != values:
                problems.append(f"view {ident} bar {bar.start:%Y-%m-%d %H:%M}: "
                                f"{'missing' if row is None else 'differs from the archive'}")
    return problems
