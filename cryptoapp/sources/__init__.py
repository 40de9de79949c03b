"""Price sources behind one interface: a faust/mode Service whose `fetch()` returns the ticks of one poll."""

from __future__ import annotations

from typing import Protocol

from aiolimiter import AsyncLimiter

from cryptoapp.coins import Coin
from cryptoapp.prices.models import PriceTick
from cryptoapp.schema import SIMULATED
from cryptoapp.settings import Settings


class PriceSource(Protocol):
    name: str

    async def fetch(self) -> list[PriceTick]:
        """The ticks of one poll; never raises for a fault of the source (it logs one line and returns less)."""


def make_source(settings: Settings, coins: tuple[Coin, ...], budget: AsyncLimiter) -> PriceSource:
    """The source named by CRYPTO_SOURCE; `budget` caps its HTTP calls per minute."""
    if settings.source == SIMULATED:
        from cryptoapp.sources.simulated import SimulatedSource

        return SimulatedSource(coins, seed=settings.simulated_seed)
    from cryptoapp.sources.coingecko import CoinGeckoSource

    return CoinGeckoSource(coins, settings.coingecko_api_url, settings.api_key, budget,
                           calls_per_minute=settings.requests_per_minute, interval=settings.interval,
                           timeout=settings.coingecko_timeout)
