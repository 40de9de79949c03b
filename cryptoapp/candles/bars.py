"""OHLC bars from ticks, pure: a minute bar keeps its ticks (a tick seen twice counts once), coarser bars merge minutes.

The same functions serve the stream (cryptoapp.candles.stage), the check and the repair from the archive
(`cryptoapp candles verify|rebuild`): a bar is a function of the set of stored ticks in its span, whatever
order they arrived in, so the stream's bars and the archive's recomputation agree exactly.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from typing import Optional

from cryptoapp.candles.models import Bar, ms_time, time_ms
from cryptoapp.schema import RESOLUTIONS, UTC, bar_start, replaces, series_id

MINUTE = RESOLUTIONS["1m"]
# A minute bar older than this (and closed) keeps only the ticks that set its open, high, low and close, plus a
# count of the others: exact for the bar and its parents, a few bytes instead of one entry per tick of a 1 Hz
# exchange. Redelivery after a crash comes long before; backfill only fills gaps, so it never repeats them.
COMPACT_AFTER_S = 3600
# A minute of a dense series is compacted at once when it holds more ticks than this, so its table entry (one
# changelog message) stays a few kB whatever the rate: 4 ticks a second are kept whole, a 500 Hz feed's minute
# would otherwise be ~2 MB, over Kafka's 1 MB message limit. The stream sees a series' ticks in order (one
# partition), so a tick between the kept ones can only be a redelivery (Minute._compacted_time).
MINUTE_TICKS_KEPT = 240


# --- the minute bar: its ticks by time ------------------------------------------------------------------------
# ticks: {time in ms: [value, volume_24h or None, source, granularity or None]}; `dropped` counts ticks compacted
# away, `dropped_sources` their sources.

@dataclasses.dataclass
class Minute:
    series: str
    ticker: str
    start_s: int
    currency: str
    ticks: dict[int, list] = dataclasses.field(default_factory=dict)
    dropped: int = 0
    dropped_sources: list[str] = dataclasses.field(default_factory=list)

    def absorb(self, time_ms: int, value: float, volume_24h: Optional[float], source: str,
               granularity: Optional[str] = None) -> bool:
        """Adds one tick the way the archive stores it: one per time (schema.replaces decides between two).

        Returns whether the bar changed (False for a tick already held: a redelivery).
        """
        held = self.ticks.get(time_ms)
        new = [value, volume_24h, source, granularity]
        if held == new or (held is not None and not replaces(granularity, held[3] if len(held) > 3 else None)):
            return False
        if held is None and self.dropped and self._compacted_time(time_ms):
            return False
        self.ticks[time_ms] = new
        return True

    def _compacted_time(self, time_ms: int) -> bool:
        # A compacted minute cannot tell which dropped tick a time was: a tick strictly between the kept ones of a
        # dense series is taken as seen (only a redelivery can bring one; it never carries a new observation).
        return min(self.ticks) < time_ms < max(self.ticks)

    def keep_bounded(self) -> None:
        """The stream's minute never outgrows MINUTE_TICKS_KEPT ticks (compacted when it would); the archive's
        recomputation, whose ticks come in any order, never calls this."""
        if len(self.ticks) > MINUTE_TICKS_KEPT:
            self.compact()

    def compact(self) -> None:
        """Keeps the ticks that set open, high, low and close; counts the others."""
        if len(self.ticks) <= 4:
            return
        times = sorted(self.ticks)
        keep = {times[0], times[-1], max(times, key=lambda t: (self.ticks[t][0], t)),
                min(times, key=lambda t: (self.ticks[t][0], t))}
        for t in times:
            if t not in keep:
                self.dropped += 1
                source = self.ticks.pop(t)[2]
                if source not in self.dropped_sources:
                    self.dropped_sources.append(source)

    def bar(self) -> Bar:
        times = sorted(self.ticks)
        values = [self.ticks[t][0] for t in times]
        start = dt.datetime.fromtimestamp(self.start_s, UTC)
        return Bar(series=self.series, ticker=self.ticker, resolution="1m", start=start, open=values[0],
                   high=max(values), low=min(values), close=values[-1], ticks=len(times) + self.dropped,
                   volume_24h=self.ticks[times[-1]][1],
                   sources=tuple(sorted({self.ticks[t][2] for t in times} | set(self.dropped_sources))),
                   currency=self.currency, first_at=ms_time(times[0]), last_at=ms_time(times[-1]))

    def to_json(self) -> dict:
        return {"series": self.series, "ticker": self.ticker, "start_s": self.start_s, "currency": self.currency,
                "ticks": {str(t): v for t, v in self.ticks.items()}, "dropped": self.dropped,
                "dropped_sources": self.dropped_sources}

    @classmethod
    def from_json(cls, data: Mapping) -> "Minute":
        return cls(series=data["series"], ticker=data["ticker"], start_s=int(data["start_s"]),
                   currency=data["currency"], ticks={int(t): list(v) for t, v in data["ticks"].items()},
                   dropped=int(data.get("dropped", 0)), dropped_sources=list(data.get("dropped_sources", ())))


def minute_key(series: str, start_s: int) -> str:
    """The state table's key of a minute bar (compact; the stored candle's _id is candle_id())."""
    return f"{series}@{start_s // MINUTE}"


def merge(children: Sequence[Bar], resolution: str) -> Bar:
    """The bar at `resolution` made of the finer bars it contains (each of them one of its minutes or sub-bars)."""
    first = min(children, key=lambda b: b.first_at)
    last = max(children, key=lambda b: b.last_at)
    return Bar(series=first.series, ticker=first.ticker, resolution=resolution,
               start=bar_start(first.start, resolution), open=first.open, high=max(b.high for b in children),
               low=min(b.low for b in children), close=last.close, ticks=sum(b.ticks for b in children),
               volume_24h=last.volume_24h, sources=tuple(sorted({s for b in children for s in b.sources})),
               currency=last.currency, first_at=first.first_at, last_at=last.last_at)


def grew(old: Optional[Bar], new: Bar) -> bool:
    """Whether minute bar `new` only added ticks to `old` (its range and sources contain old's), so a coarser bar
    holding `old` can take `new` by fold(); a tick that replaced another at its time may shrink a bar instead."""
    return old is None or (new.high >= old.high and new.low <= old.low and new.ticks >= old.ticks
                           and new.first_at <= old.first_at and new.last_at >= old.last_at
                           and set(old.sources) <= set(new.sources))


def fold(coarse: Bar, old: Optional[Bar], new: Bar) -> Bar:
    """`coarse` (a merge of minutes, `old` among them or absent) with minute `old` grown into `new` (grew(old, new)):
    the same bar merge() makes of the children with `new` in place of `old`, at the cost of one child."""
    first = new if new.first_at <= coarse.first_at else coarse
    last = new if new.last_at >= coarse.last_at else coarse
    return dataclasses.replace(
        coarse, open=first.open, first_at=first.first_at, close=last.close, last_at=last.last_at,
        volume_24h=last.volume_24h, currency=last.currency, high=max(coarse.high, new.high),
        low=min(coarse.low, new.low), ticks=coarse.ticks - (old.ticks if old is not None else 0) + new.ticks,
        sources=tuple(sorted(set(coarse.sources) | set(new.sources))))


def parents(start_s: int) -> dict[str, int]:
    """The start (Unix seconds) of the bar holding minute `start_s` at every resolution."""
    return {res: start_s // seconds * seconds for res, seconds in RESOLUTIONS.items()}


# --- from stored ticks: what verify and rebuild compute --------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class StoredTick:
    """The fields of a stored tick a bar needs (a crypto.prices document)."""

    ticker: str
    source: str
    timestamp: dt.datetime
    value: float
    volume_24h: Optional[float]
    currency: str
    granularity: Optional[str] = None

    @classmethod
    def from_document(cls, doc: Mapping) -> Optional["StoredTick"]:
        value = doc.get("value")
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not value > 0:
            return None  # the archive holds no such tick; a bar never invents one
        volume = doc.get("volume_24h")
        return cls(ticker=doc["sensor_id"], source=doc.get("source") or "unknown", timestamp=doc["timestamp"],
                   value=float(value), volume_24h=float(volume) if isinstance(volume, (int, float)) else None,
                   currency=doc.get("currency") or "usd", granularity=doc.get("granularity"))


def minutes_from_ticks(ticks: Iterable[StoredTick]) -> dict[str, Minute]:
    """Minute bars (by minute_key) of stored ticks, in any order."""
    minutes: dict[str, Minute] = {}
    for tick in ticks:
        series = series_id(tick.ticker, tick.source)
        at = time_ms(tick.timestamp)
        start_s = at // 1000 // MINUTE * MINUTE
        key = minute_key(series, start_s)
        minute = minutes.get(key)
        if minute is None:
            minute = minutes[key] = Minute(series, tick.ticker, start_s, tick.currency)
        minute.absorb(at, tick.value, tick.volume_24h, tick.source, tick.granularity)
    return minutes


def bars_from_minutes(minutes: Iterable[Minute]) -> dict[str, Bar]:
    """Every bar (by candle id) at every resolution that the minutes make."""
    groups: dict[tuple[str, str, int], list[Bar]] = {}
    for minute in minutes:
        bar = minute.bar()
        for res, start_s in parents(minute.start_s).items():
            groups.setdefault((minute.series, res, start_s), []).append(bar)
    bars = {}
    for (_, res, _), children in groups.items():
        bar = children[0] if res == "1m" else merge(children, res)
        bars[bar.id] = bar
    return bars


class BarAccumulator:
    """Every bar of stored ticks fed one at a time, in any order, without holding the ticks: what `verify` and
    `rebuild` compute from an archive of millions. The archive holds one tick per series and time, so no tick is
    seen twice; the result equals bars_from_minutes(minutes_from_ticks(...)) (tests/unit/test_candles.py).
    `since` per resolution: bars that start earlier are not made (the retention of crypto.candles)."""

    def __init__(self, since: Optional[Mapping[str, Optional[float]]] = None):
        self.since = {res: (since or {}).get(res) for res in RESOLUTIONS}
        # (series, resolution, start_s) -> [first_ms, open, last_ms, close, high, low, ticks, volume, sources, ticker,
        #                                    currency]
        self.acc: dict[tuple[str, str, int], list] = {}

    def add(self, tick: StoredTick) -> None:
        series = series_id(tick.ticker, tick.source)
        at = time_ms(tick.timestamp)
        for res, seconds in RESOLUTIONS.items():
            start_s = at // 1000 // seconds * seconds
            limit = self.since[res]
            if limit is not None and start_s < limit:
                continue
            key = (series, res, start_s)
            bar = self.acc.get(key)
            if bar is None:
                self.acc[key] = [at, tick.value, at, tick.value, tick.value, tick.value, 1, tick.volume_24h,
                                 {tick.source}, tick.ticker, tick.currency]
                continue
            if at < bar[0]:
                bar[0], bar[1] = at, tick.value
            if at > bar[2]:
                bar[2], bar[3], bar[7], bar[10] = at, tick.value, tick.volume_24h, tick.currency
            bar[4] = max(bar[4], tick.value)
            bar[5] = min(bar[5], tick.value)
            bar[6] += 1
            bar[8].add(tick.source)

    def bars(self) -> dict[str, Bar]:
        out = {}
        for (series, res, start_s), (first, opened, last, close, high, low, ticks, volume, sources, ticker,
                                     currency) in self.acc.items():
            bar = Bar(series=series, ticker=ticker, resolution=res, start=dt.datetime.fromtimestamp(start_s, UTC),
                      open=opened, high=high, low=low, close=close, ticks=ticks, volume_24h=volume,
                      sources=tuple(sorted(sources)), currency=currency, first_at=ms_time(first),
                      last_at=ms_time(last))
            out[bar.id] = bar
        return out
