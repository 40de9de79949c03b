"""Price sources: the polled ones behind one interface (a faust/mode Service whose `fetch()` returns the ticks of one
poll), and the exchange stream (sources/exchange.py), which pushes its ticks itself."""

from __future__ import annotations

from typing import Optional, Protocol

from aiolimiter import AsyncLimiter

from cryptoapp.coins import Coin
from cryptoapp.prices.models import PriceTick
from cryptoapp.schema import COINGECKO, SIMULATED
from cryptoapp.settings import Settings


class PriceSource(Protocol):
    name: str

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
