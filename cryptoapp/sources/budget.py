"""The request budget of a price API: at most N calls in any 60 seconds, shared by everything that calls it."""

from __future__ import annotations

import asyncio
import collections
import logging
import time

log = logging.getLogger(__name__)


class RequestBudget:
    """`async with budget:` before each HTTP call; waits while the last `period` seconds hold `calls` calls.

    A sliding window, not a token bucket: a bucket of N per minute lets a burst of N through and then
    refills, which puts up to 2N calls in one minute; providers count calls per minute.
    """

    def __init__(self, calls: int, period: float = 60.0):
        if calls < 1:
            raise ValueError(f"a request budget needs at least one call per period, not {calls}")
        self.calls = calls
        self.period = period
        self._starts: collections.deque[float] = collections.deque()
        self._lock = asyncio.Lock()

    def _forget_old(self, now: float) -> None:
        while self._starts and now - self._starts[0] >= self.period:
            self._starts.popleft()

    def used(self) -> int:
        """Calls started within the last period."""
        self._forget_old(time.monotonic())
        return len(self._starts)

    async def acquire(self) -> None:
        async with self._lock:  # one waiter at a time keeps the order of callers
            while True:
                now = time.monotonic()
                self._forget_old(now)
                if len(self._starts) < self.calls:
                    self._starts.append(now)
                    return
                wait = self.period - (now - self._starts[0])
                log.info("request budget of %d calls per %.0f s used up: next call in %.1f s "
                         "(CRYPTO_REQUESTS_PER_MINUTE)", self.calls, self.period, wait)
                await asyncio.sleep(wait)

    async def __aenter__(self) -> "RequestBudget":
        await self.acquire()
        return self

    async def __aexit__(self, *exc) -> None:
        return None
