"""An offline price source for demos: a seeded random walk from realistic prices, marked source="simulated"."""

from __future__ import annotations

import datetime as dt
import math
import random

from mode import Service

from cryptoapp.coins import Coin
from cryptoapp.prices.models import PriceTick
from cryptoapp.schema import UTC

# Late-2025 levels: price (USD), circulating supply, 24 h volume (USD), per-step volatility.
_START = {
    "BTC": (87000.0, 19.95e6, 6.0e10, 0.0008),
    "ETH": (2900.0, 120.7e6, 2.5e10, 0.0010),
    "BNB": (850.0, 137.7e6, 2.0e9, 0.0010),
    "USDT": (1.0, 184e9, 9.0e10, 0.00005),
    "USDC": (1.0, 75e9, 1.2e10, 0.00005),
}
_OTHER = (10.0, 1e9, 1e8, 0.0015)


class SimulatedSource(Service):
    """Every poll moves each coin one random-walk step; the numbers are simulated, never real."""

    name = "simulated"

    def __init__(self, coins: tuple[Coin, ...], seed: int = 42, **kwargs):
        super().__init__(**kwargs)
        self.coins = coins
        self._random = random.Random(seed)
        self._state = {c.ticker: list(_START.get(c.ticker, _OTHER)) for c in coins}
        self._open = {c.ticker: self._state[c.ticker][0] for c in coins}

    def step(self, now: dt.datetime) -> list[PriceTick]:
        """One tick per coin at `now` (pure: no I/O)."""
        ticks = []
        for coin in self.coins:
            state = self._state[coin.ticker]
            price, supply, volume, sigma = state
            price *= math.exp(self._random.gauss(0.0, sigma))
            volume *= math.exp(self._random.gauss(0.0, sigma * 2))
            state[0], state[2] = price, volume
            ticks.append(PriceTick(
                ticker=coin.ticker, timestamp=now, value=price, source=self.name,
                volume_24h=volume, change_24h_pct=(price / self._open[coin.ticker] - 1) * 100,
                market_cap=price * supply, fetched_at=now,
            ))
        return ticks

    async def fetch(self) -> list[PriceTick]:
        # Millisecond precision: that is what a BSON date keeps, and it makes each tick's _id distinct.
        now = dt.datetime.now(UTC)
        return self.step(now.replace(microsecond=now.microsecond // 1000 * 1000))
