"""Price sources: the polled ones behind one interface (a faust/mode Service whose `fetch()` returns the ticks of one
poll), and the exchange stream (sources/exchange.py), which pushes its ticks itself."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any, Optional, Protocol

from aiolimiter import AsyncLimiter

from cryptoapp.coins import Coin
from cryptoapp.prices.models import PriceTick
from cryptoapp.schema import COINGECKO, SIMULATED, UTC, iso_z
from cryptoapp.settings import Settings


@dataclasses.dataclass
class SourceHealth:
    """What the pipeline status shows of a source: when it last delivered, and the problem it has had since."""

    ok_at: Optional[dt.datetime] = None
    error: Optional[str] = None
    error_since: Optional[dt.datetime] = None

    def ok(self) -> None:
        self.ok_at, self.error, self.error_since = dt.datetime.now(UTC), None, None

    def failed(self, message: str) -> None:
        self.error = message
        self.error_since = self.error_since or dt.datetime.now(UTC)

    def to_json(self) -> dict[str, Any]:
        return {"ok_at": self.ok_at and iso_z(self.ok_at), "error": self.error,
                "error_since": self.error_since and iso_z(self.error_since)}


class PriceSource(Protocol):
    name: str
    health: SourceHealth

    async def fetch(self) -> list[PriceTick]:
        """The ticks of one poll; never raises for a fault of the source (it logs one line and returns less)."""


def make_source(settings: Settings, coins: tuple[Coin, ...], budget: AsyncLimiter) -> Optional[PriceSource]:
    """The polled source among CRYPTO_SOURCES (coingecko or simulated), None when there is none; `budget` caps
    its HTTP calls per minute."""
    if settings.polled_source == SIMULATED:
        from cryptoapp.sources.simulated import SimulatedSource

        return SimulatedSource(coins, seed=settings.simulated_seed)
    if settings.polled_source != COINGECKO:
        return None
    from cryptoapp.sources.coingecko import CoinGeckoSource

    return CoinGeckoSource(coins, settings.coingecko_api_url, settings.api_key, budget,
                           calls_per_minute=settings.requests_per_minute, interval=settings.interval,
                           timeout=settings.coingecko_timeout)
