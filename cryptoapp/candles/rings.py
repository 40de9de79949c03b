"""The serving views, pure: fixed-size rings of bars and of recent ticks per series, packed as binary arrays.

Like Graphite's whisper archives: each series keeps, per resolution, the newest N bars in one document, so a
chart reads one document whatever the archive holds. The numbers are packed (little-endian float64 arrays in
BSON binary fields): FerretDB 1.24 decodes a document field by field, and a bar a field would cost it
milliseconds per chart, a packed array microseconds (docs/views.md has the measurements).
"""

from __future__ import annotations

import array
import dataclasses
import datetime as dt
import math
import sys
from collections.abc import Iterable, Mapping
from typing import Optional

from cryptoapp.candles.models import Bar
from cryptoapp.schema import (
    COINGECKO, COINGECKO_BACKFILL, RESOLUTIONS, SIMULATED, UTC, granularity_seconds, replaces)

# Bars per series and resolution: a little over 2,000 points, the most a chart draws (5m: the 168 h window).
RING_SIZE = {"1m": 2000, "5m": 2016, "1h": 2000, "1d": 2000}
TICK_RING_SIZE = 2000
# A ticks ring's newest ticks are saved in a small tail document (crypto.view_tails) until this many have come, then
# folded into the ring's own document: each save rewrites a few KB instead of the ring's 170 KB, and FerretDB
# decodes every document of a collection on each update (shared facts: services.md), so the idle demo's database
# load falls from about half a core to a few percent (docs/views.md).
TAIL_SIZE = 100
# Which sources made a bar, as bits, so one byte per bar carries it (exchanges are series of their own).
SOURCE_BITS = {COINGECKO: 1, COINGECKO_BACKFILL: 2, SIMULATED: 4}
OTHER_SOURCE = 8
BAR_ARRAYS = ("t", "o", "h", "l", "c", "n", "v", "qv", "w")  # float64 each; t = bar start (Unix s), NaN = none
# qv, w: a trade-built bar's own volume in the quote currency and its VWAP (cryptoapp/trades); NaN for ticker bars,
# and in a ring saved before they existed (read through _array, which gives NaN for an array a document lacks).
TICK_ARRAYS = ("t", "value", "bid_price", "ask_price", "bid_size", "ask_size", "volume_24h", "change_24h_pct",
               "market_cap", "g")                          # float64 each; t in Unix ms, g = granularity seconds
RING_NUMBERS = TICK_ARRAYS[1:-1]                           # the numbers of a tick, in a tick ring's order
LITTLE = sys.byteorder == "little"


def view_id(series: str, kind: str) -> str:
    """`BTC_5m`, `BTC_binanceus_ticks`: a view document's _id (kind: a resolution, or "ticks")."""
    return f"{series}_{kind}"


def _pack(values: Iterable[float]) -> bytes:
    packed = array.array("d", values)
    if not LITTLE:
        packed.byteswap()
    return packed.tobytes()


def _unpack(data: bytes) -> list[float]:
    values = array.array("d")
    values.frombytes(bytes(data))
    if not LITTLE:
        values.byteswap()
    return values.tolist()


def _array(doc: Mapping, name: str) -> list[float]:
    """A packed array of a view or tail document; NaN throughout for one it was saved without (an older version)."""
    return _unpack(doc[name]) if name in doc else [math.nan] * (len(doc["t"]) // 8)


def _num(x: Optional[float]) -> float:
    return math.nan if x is None else float(x)


def _opt(x: float) -> Optional[float]:
    return None if math.isnan(x) else x


def source_bits(sources: Iterable[str]) -> int:
    return sum({SOURCE_BITS.get(s, OTHER_SOURCE) for s in sources})


def bit_sources(bits: int, other: Optional[str]) -> list[str]:
    """The sources a bitmask names; `other` is the series' own source (an exchange) for the OTHER bit."""
    named = [name for name, bit in SOURCE_BITS.items() if bits & bit]
    return named + ([other or "other"] if bits & OTHER_SOURCE else [])


@dataclasses.dataclass
class BarRing:
    """The newest RING_SIZE[resolution] bars of one series: slot = (bar start / resolution) mod size."""

    series: str
    ticker: str
    resolution: str
    currency: str = "usd"
    source: Optional[str] = None       # an exchange series' source; None for CoinGecko's family
    rev: int = 0                        # bumped by every write: a writer whose copy is older reloads first
    arrays: dict[str, list[float]] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        size = RING_SIZE[self.resolution]
        for name in (*BAR_ARRAYS, "src"):
            self.arrays.setdefault(name, [math.nan] * size)

    @property
    def size(self) -> int:
        return RING_SIZE[self.resolution]

    def slot(self, start_s: float) -> int:
        return int(start_s // RESOLUTIONS[self.resolution]) % self.size

    def put(self, bar: Bar) -> bool:
        """Sets the bar's slot, unless the slot holds a newer bar; returns whether anything changed."""
        self.currency = bar.currency
        return self.put_row({"t": bar.start.timestamp(), "o": bar.open, "h": bar.high, "l": bar.low, "c": bar.close,
                             "n": float(bar.ticks), "v": _num(bar.volume_24h), "qv": _num(bar.quote_volume),
                             "w": _num(bar.vwap), "src": float(source_bits(bar.sources))})

    def put_row(self, row: Mapping[str, float]) -> bool:
        """put() of a bar as its numbers by BAR_ARRAYS and "src"."""
        slot = self.slot(row["t"])
        held = self.arrays["t"][slot]
        if not math.isnan(held) and held > row["t"]:
            return False
        changed = False
        for name, value in row.items():
            column = self.arrays[name]
            if not (column[slot] == value or (math.isnan(column[slot]) and math.isnan(value))):
                column[slot] = value
                changed = True
        return changed

    def tail_document(self, slots: Iterable[int], updated_at: dt.datetime) -> dict:
        """The bars of `slots` only, packed like the ring's document: the tail of a ring saved before they changed."""
        slots = sorted(set(slots))
        return {**self.document(updated_at), **{name: _pack(self.arrays[name][i] for i in slots)
                                                for name in (*BAR_ARRAYS, "src")}, "size": len(slots)}

    def absorb_tail(self, tail: Mapping) -> tuple[list[int], bool]:
        """The tail's bars put into the ring: (their slots, whether the ring changed)."""
        arrays = {name: _array(tail, name) for name in (*BAR_ARRAYS, "src")}
        rows = [{name: arrays[name][i] for name in arrays} for i in range(len(arrays["t"]))]
        changed = any([self.put_row(row) for row in rows])
        return [self.slot(row["t"]) for row in rows], changed

    def rows(self, start: Optional[dt.datetime] = None, end: Optional[dt.datetime] = None) -> list[dict]:
        """The bars with start <= bar start < end, oldest first."""
        low = -math.inf if start is None else start.timestamp() - RESOLUTIONS[self.resolution]
        high = math.inf if end is None else end.timestamp()
        a = self.arrays
        out = []
        for i in sorted((i for i, t in enumerate(a["t"]) if not math.isnan(t) and low < t < high), key=a["t"].__getitem__):
            out.append({"timestamp": dt.datetime.fromtimestamp(a["t"][i], UTC), "open": a["o"][i], "high": a["h"][i],
                        "low": a["l"][i], "close": a["c"][i], "ticks": int(a["n"][i]), "volume_24h": _opt(a["v"][i]),
                        "quote_volume": _opt(a["qv"][i]), "vwap": _opt(a["w"][i]),
                        "sources": bit_sources(int(a["src"][i]), self.source)})
        return out

    def oldest(self) -> Optional[dt.datetime]:
        held = [t for t in self.arrays["t"] if not math.isnan(t)]
        return dt.datetime.fromtimestamp(min(held), UTC) if held else None

    def document(self, updated_at: dt.datetime) -> dict:
        return {"_id": view_id(self.series, self.resolution), "series": self.series, "sensor_id": self.ticker,
                "kind": self.resolution, "size": self.size, "currency": self.currency, "source": self.source,
                "rev": self.rev, "updated_at": updated_at,
                **{name: _pack(values) for name, values in self.arrays.items()}}

    @classmethod
    def from_document(cls, doc: Mapping) -> "BarRing":
        ring = cls(series=doc["series"], ticker=doc["sensor_id"], resolution=doc["kind"],
                   currency=doc.get("currency") or "usd", source=doc.get("source"), rev=int(doc.get("rev", 0)),
                   arrays={name: _array(doc, name) for name in (*BAR_ARRAYS, "src")})
        if any(len(v) != ring.size for v in ring.arrays.values()):  # written with another size: start it afresh
            return cls(ring.series, ring.ticker, ring.resolution, ring.currency, ring.source, ring.rev)
        return ring


@dataclasses.dataclass
class TickRing:
    """The newest TICK_RING_SIZE ticks of one series, by time; the same precedence as the archive at one time."""

    series: str
    ticker: str
    currency: str = "usd"
    source: Optional[str] = None
    rev: int = 0
    ticks: dict[int, tuple] = dataclasses.field(default_factory=dict)  # ms -> (numbers by TICK_ARRAYS[1:], source)
    _in_order: bool = dataclasses.field(default=False, repr=False, compare=False)  # ticks' keys ascending
    _newest_ms: float = dataclasses.field(default=-math.inf, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._newest_ms = max(self.ticks, default=-math.inf)
        self._in_order = False

    def add(self, time_ms: int, numbers: Mapping[str, Optional[float]], source: str,
            granularity: Optional[str]) -> bool:
        """Adds a tick (schema.replaces decides between two at one time); drops the oldest past the size.

        O(1) for ticks that come in time order, as a series' ticks do: the dict is kept in time order, so its first
        key is the oldest; a late tick puts it out of order, and it is sorted once when the oldest is next needed."""
        return self.add_values(time_ms, tuple(numbers.get(name) for name in RING_NUMBERS), source, granularity)

    def add_values(self, time_ms: int, values: tuple, source: str, granularity: Optional[str]) -> bool:
        """add() with the numbers as a tuple in RING_NUMBERS order (None where the source gave none)."""
        held = self.ticks.get(time_ms)
        if held is not None and not replaces(granularity, _label(held[0][-1])):
            return False
        row = tuple(math.nan if x is None else float(x) for x in values) + (float(granularity_seconds(granularity)),)
        if held is not None and held == (row, source):
            return False
        if held is None and len(self.ticks) >= TICK_RING_SIZE and time_ms < self._oldest_ms():
            return False
        if held is None and self.ticks and time_ms < self._newest_ms:
            self._in_order = False
        self._newest_ms = max(self._newest_ms, time_ms)
        self.ticks[time_ms] = (row, source)
        while len(self.ticks) > TICK_RING_SIZE:
            del self.ticks[self._oldest_ms()]
        return True

    def _oldest_ms(self) -> int:
        if not self._in_order:
            self.ticks = dict(sorted(self.ticks.items()))
            self._in_order = True
        return next(iter(self.ticks))

    def full(self) -> bool:
        return len(self.ticks) >= TICK_RING_SIZE

    def oldest(self) -> Optional[dt.datetime]:
        return dt.datetime.fromtimestamp(self._oldest_ms() / 1000, UTC) if self.ticks else None

    def rows(self, start: Optional[dt.datetime] = None, end: Optional[dt.datetime] = None) -> list[dict]:
        low = -math.inf if start is None else start.timestamp() * 1000
        high = math.inf if end is None else end.timestamp() * 1000
        out = []
        for t in sorted(t for t in self.ticks if low <= t <= high):
            numbers, source = self.ticks[t]
            row = {"timestamp": dt.datetime.fromtimestamp(t // 1000, UTC) + dt.timedelta(milliseconds=t % 1000),
                   **{name: _opt(x) for name, x in zip(TICK_ARRAYS[1:-1], numbers)}, "source": source}
            row["granularity"] = _label(numbers[-1])
            out.append(row)
        return out

    def document(self, updated_at: dt.datetime) -> dict:
        if self.ticks:
            self._oldest_ms()  # sorts a ring a late tick put out of order
        times = list(self.ticks)
        columns = {name: _pack(self.ticks[t][0][i] for t in times) for i, name in enumerate(TICK_ARRAYS[1:])}
        sources = sorted({self.ticks[t][1] for t in times})
        return {"_id": view_id(self.series, "ticks"), "series": self.series, "sensor_id": self.ticker, "kind": "ticks",
                "size": TICK_RING_SIZE, "currency": self.currency, "source": self.source, "rev": self.rev,
                "updated_at": updated_at, "t": _pack(times), **columns, "sources": sources,
                "src": _pack(float(sources.index(self.ticks[t][1])) for t in times)}

    def rows_held(self) -> list[tuple]:
        """The ticks as put_rows rows (time in ms, numbers in RING_NUMBERS order, source, granularity)."""
        return [(t, numbers[:-1], source, _label(numbers[-1])) for t, (numbers, source) in self.ticks.items()]

    def tail_document(self, rows: Iterable[tuple], updated_at: dt.datetime) -> dict:
        """Rows (put_rows form) as a ring document of their own: the tail of a ring saved before they came."""
        part = TickRing(self.series, self.ticker, self.currency, self.source)
        for row in rows:
            part.add_values(*row)
        return part.document(updated_at)

    def absorb_tail(self, tail: Mapping) -> tuple[list[tuple], bool]:
        """The tail's ticks added to the ring: (them as rows, whether the ring changed)."""
        rows = TickRing.from_document(tail).rows_held()
        return rows, any([self.add_values(*row) for row in rows])

    @classmethod
    def from_document(cls, doc: Mapping) -> "TickRing":
        ring = cls(series=doc["series"], ticker=doc["sensor_id"], currency=doc.get("currency") or "usd",
                   source=doc.get("source"), rev=int(doc.get("rev", 0)))
        columns = [_unpack(doc[name]) for name in TICK_ARRAYS[1:]]
        sources = doc.get("sources") or []
        for i, (t, code) in enumerate(zip(_unpack(doc["t"]), _unpack(doc["src"]))):
            ring.ticks[int(t)] = (tuple(column[i] for column in columns), sources[int(code)])
        ring.__post_init__()
        return ring


_LABELS = {seconds: label for label, seconds in (("5m", 300), ("1h", 3600), ("1d", 86400))}


def _label(seconds: float) -> Optional[str]:
    return None if math.isnan(seconds) or not seconds else _LABELS.get(int(seconds), f"{int(seconds)}s")


def label_of(seconds: float) -> Optional[str]:
    """A granularity label from its seconds (None for a live tick)."""
    return _label(seconds)
