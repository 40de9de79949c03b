"""Alert windows shared by a coin's rules of one window length: buckets of the low and high its price or volume hit."""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Optional

WINDOW_BUCKETS = 60
# A window's buckets depend only on the ticks it observes and its length, so every change_pct rule of a coin with
# the same window shares one price window, and every volume_spike rule one volume window: a tick updates a few
# windows, not every rule. At most WINDOW_BUCKETS + 1 buckets whatever the tick rate: the window's edge is exact to
# one bucket (1/60 of the window). `observe` is the one implementation, for these windows and for the per-rule
# reference (evaluation.RuleState).


def observe(window, value: float, at: float, window_s: int) -> None:
    """Adds a value seen at `at` (Unix s) to `window` (anything with buckets, low, low_at, high, high_at and
    revision) and drops the buckets that lie wholly before the window; a bucket opened or dropped moves the
    revision (a change worth persisting), the in-bucket low and high moving between them do not."""
    width = window_s / WINDOW_BUCKETS
    start = math.floor(at / width) * width
    buckets = window.buckets
    if buckets and buckets[-1][0] == start:
        current = buckets[-1]
        if value < current[1]:
            current[1], current[2] = value, at
        if value > current[3]:
            current[3], current[4] = value, at
    else:
        buckets.append([start, value, at, value, at])
        window.revision += 1
    cutoff = at - window_s
    dropped = False
    while buckets[0][0] + width <= cutoff:
        del buckets[0]
        dropped = True
    if dropped or window.low is None:
        window.revision += dropped
        lowest = min(buckets, key=_low)
        highest = max(buckets, key=_high)
        window.low, window.low_at, window.high, window.high_at = lowest[1], lowest[2], highest[3], highest[4]
    else:
        if value < window.low:
            window.low, window.low_at = value, at
        if value > window.high:
            window.high, window.high_at = value, at


def _low(bucket: list[float]) -> float:
    return bucket[1]


def _high(bucket: list[float]) -> float:
    return bucket[3]


@dataclasses.dataclass(slots=True)
class Window:
    """One coin's window of one value (`price` or `volume`) and length; `last_at` is the source time (Unix s) of the
    newest tick it judged, so a tick no newer is not observed twice."""

    window_s: int
    buckets: list[list[float]] = dataclasses.field(default_factory=list)  # [start, low, low_at, high, high_at]
    low: Optional[float] = None
    low_at: Optional[float] = None
    high: Optional[float] = None
    high_at: Optional[float] = None
    last_at: Optional[float] = None
    revision: int = 0

    def to_json(self) -> dict[str, Any]:
        return {"window_s": self.window_s, "buckets": [list(b) for b in self.buckets], "low": self.low,
                "low_at": self.low_at, "high": self.high, "high_at": self.high_at, "last_at": self.last_at}

    @classmethod
    def from_json(cls, data: dict[str, Any], window_s: int) -> "Window":
        """A stored window; also reads a rule's state of the per-rule format (its buckets, its last tick time)."""
        return cls(window_s=window_s, buckets=[list(b) for b in data.get("buckets") or ()], low=data.get("low"),
                   low_at=data.get("low_at"), high=data.get("high"), high_at=data.get("high_at"),
                   last_at=data.get("last_at", data.get("last_tick_at")))

    def follow(self, ats: list[float], values: list[Optional[float]]) -> tuple[list[float], ...]:
        """Observes the judged ticks of a batch (`ats` ascending, `values` None where a tick has none) and gives the
        window's low, its time, high and its time after each of them (NaN while the window is empty)."""
        lows, low_ats, highs, high_ats = [], [], [], []
        last, window_s, nan = self.last_at, self.window_s, math.nan
        for at, value in zip(ats, values):
            if last is None or at > last:
                last = at
                if value is not None and value > 0:
                    observe(self, value, at, window_s)
            if self.low is None:
                lows.append(nan), low_ats.append(nan), highs.append(nan), high_ats.append(nan)
            else:
                lows.append(self.low), low_ats.append(self.low_at), highs.append(self.high)
                high_ats.append(self.high_at)
        self.last_at = last
        return lows, low_ats, highs, high_ats


def window_key(coin: str, value: str, window_s: int) -> str:
    """The window's key in the alert_states table, e.g. BTC/price/900 (rule ids are 8 hex digits: never equal)."""
    return f"{coin}/{value}/{window_s}"
