"""The request budget of a price API: at most N calls in any 60 seconds, shared by everything that calls it."""

from __future__ import annotations

from aiolimiter import AsyncLimiter


def request_budget(calls_per_minute: int) -> AsyncLimiter:
    """`async with budget:` before each HTTP call: calls go at least 60/N seconds apart.

    aiolimiter's leaky bucket, one call deep: a bucket N calls deep lets a burst of N through and then
    refills, which puts up to 2N calls into one minute; calls 60/N s apart never put more than N into
    any 60 seconds, however the provider's minute is counted.
    """
    if calls_per_minute < 1:
        raise ValueError(f"a request budget needs at least one call per minute, not {calls_per_minute}")
    return AsyncLimiter(1, spacing(calls_per_minute))


def spacing(calls_per_minute: int) -> float:
    """Seconds between two calls on a budget of `calls_per_minute`."""
    return 60 / calls_per_minute
