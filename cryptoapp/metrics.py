"""The worker's Prometheus metrics (prometheus-client), served beside Faust's own at /metrics/ (README lists them).

Also the exact readability time of recent ticks: each batch's acknowledged write time against each tick's creation
(`fetched_at`), kept for the last READABLE_KEPT ticks and served at /latency/ for the benchmarks, whose
percentiles then come from every tick, not from histogram buckets.
"""

from __future__ import annotations

import array
import time
from collections.abc import Iterable

from prometheus_client import Counter, Gauge, Histogram

READABLE_KEPT = 500_000

TICKS_CONSUMED = Counter("cryptoapp_ticks_consumed", "Messages the sink read from the prices topic")
TICKS_STORED = Counter("cryptoapp_ticks_stored", "Ticks written to the archive (inserted or refreshed)")
DEAD_LETTERS = Counter("cryptoapp_dead_letters", "Messages parked in the dead-letter topic")
BATCH_MESSAGES = Histogram("cryptoapp_sink_batch_size", "Messages per sink batch",
                       buckets=(1, 5, 10, 50, 100, 250, 500, 1000))
WRITE_SECONDS = Histogram("cryptoapp_sink_write_seconds", "Seconds one batch's archive write took (retries included)",
                          buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
READABLE_SECONDS = Histogram("cryptoapp_tick_readable_seconds",
                             "Seconds from a tick's creation (fetched_at) to its batch's acknowledged archive write",
                             buckets=(0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 2, 5, 10, 30, 60))
CONSUMER_LAG = Gauge("cryptoapp_consumer_lag", "Messages of the prices topic not yet committed, per partition owned",
                     ["partition"])
API_CALLS = Counter("cryptoapp_price_api_calls", "HTTP calls to a price API, by outcome", ["source", "outcome"])
EXCHANGE_TICKS = Counter("cryptoapp_exchange_ticks", "Quotes the exchange stream published", ["exchange"])



class _Ring:
    """(created, readable) pairs of the last `size` ticks, packed as doubles: 16 bytes a tick, grown only as
    ticks arrive (a worker polling a few coins a minute keeps a few kB; 500,000 ticks take 8 MB)."""

    def __init__(self, size: int) -> None:
        self.size, self.values, self.next = size, array.array("d"), 0

    def append(self, created: float, readable: float) -> None:
        if len(self.values) < 2 * self.size:
            self.values.extend((created, readable))
        else:
            self.values[2 * self.next:2 * self.next + 2] = array.array("d", (created, readable))
            self.next = (self.next + 1) % self.size

    def newest(self, count: int) -> list[tuple[float, float]]:
        """The last `count` pairs (newest first), without copying the whole ring."""
        held = len(self.values) // 2
        end = self.next if held == self.size else held
        slots = ((end - 1 - i) % held for i in range(min(count, held)))
        return [(self.values[2 * s], self.values[2 * s + 1]) for s in slots]

    def pairs(self) -> list[tuple[float, float]]:
        values = self.values[2 * self.next:] + self.values[:2 * self.next]  # oldest first
        return list(zip(values[0::2], values[1::2]))


_readable = _Ring(READABLE_KEPT)


def batch_written(created: Iterable[float], acked_at: float | None = None) -> None:
    """A batch's write was acknowledged now: every tick in it became readable at that moment."""
    acked_at = time.time() if acked_at is None else acked_at
    for at in created:
        READABLE_SECONDS.observe(max(0.0, acked_at - at))
        _readable.append(at, acked_at)


def readable_since(since: float = 0.0) -> list[tuple[float, float]]:
    """(created, readable) Unix times of the kept ticks created at or after `since`, oldest first."""
    return [pair for pair in _readable.pairs() if pair[0] >= since]


def readable_p90_s(count: int = 1000) -> float | None:
    """The 90th percentile of the last `count` ticks' seconds from fetch to stored (crypto.status carries it for
    the dashboard's stale rule); None before any tick."""
    waits = sorted(max(0.0, readable - created) for created, readable in _readable.newest(count))
    return waits[min(len(waits) - 1, int(0.9 * len(waits)))] if waits else None
