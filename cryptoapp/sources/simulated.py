"""An offline price source for demos: a seeded random walk from realistic prices, marked source="simulated"."""

from __future__ import annotations

import datetime as dt
import math
import random

from mode import Service

from cryptoapp.coins import Coin
from cryptoapp.prices.models import PriceTick
from cryptoapp.schema import UTC
from cryptoapp.sources import SourceHealth

# Late-2025 levels, rounded: price (USD), circulating supply, 24 h volume (USD), per-step volatility. One row per coin
# of the built-in list (cryptoapp.coins.KNOWN_COINS), the only coins simulated: any other has no level to start from.
LEVELS = {
    "BTC": (87000.0, 19.95e6, 6.0e10, 0.0008),
    "ETH": (2900.0, 120.7e6, 2.5e10, 0.0010),
    "BNB": (850.0, 137.7e6, 2.0e9, 0.0010),
    "USDT": (1.0, 184e9, 9.0e10, 0.00005),
    "USDC": (1.0, 75e9, 1.2e10, 0.00005),
    "SOL": (130.0, 560e6, 4.0e9, 0.0014),
    "XRP": (2.0, 60e9, 3.0e9, 0.0013),
    "ADA": (0.40, 36e9, 6.0e8, 0.0015),
    "DOGE": (0.14, 151e9, 1.2e9, 0.0016),
    "TRX": (0.28, 94.7e9, 6.0e8, 0.0008),
    "DOT": (2.1, 1.6e9, 2.0e8, 0.0015),
    "LTC": (80.0, 76.5e6, 4.0e8, 0.0013),
    "LINK": (13.0, 680e6, 6.0e8, 0.0015),
    "AVAX": (13.0, 430e6, 4.0e8, 0.0016),
    "BCH": (560.0, 19.9e6, 4.0e8, 0.0013),
    "XLM": (0.24, 32e9, 2.0e8, 0.0014),
    "DAI": (1.0, 5.3e9, 1.5e8, 0.00005),
    "SHIB": (8.0e-6, 589e12, 1.5e8, 0.0016),
    "UNI": (5.5, 630e6, 3.0e8, 0.0016),
    "MATIC": (0.13, 10.5e9, 1.0e8, 0.0016),
    "TON": (1.6, 2.5e9, 1.5e8, 0.0014),
    "XMR": (400.0, 18.4e6, 1.0e8, 0.0012),
    "ATOM": (2.5, 490e6, 1.2e8, 0.0015),
}


class SimulatedSource(Service):
    """Every poll moves each coin one random-walk step; the numbers are simulated, never real. Only the coins of
    LEVELS are simulated (the worker leaves any other out at start, with one line: cryptoapp.sources.catalogue)."""

    name = "simulated"

    def __init__(self, coins: tuple[Coin, ...], seed: int = 42, **kwargs):
        super().__init__(**kwargs)
        self.coins = tuple(c for c in coins if c.ticker in LEVELS)
        self._random = random.Random(seed)
        self._state = {c.ticker: list(LEVELS[c.ticker]) for c in self.coins}
        self._open = {c.ticker: self._state[c.ticker][0] for c in self.coins}
        self.health = SourceHealth()

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

    def history(self, start: dt.datetime, end: dt.datetime, step_s: int = 300) -> list[PriceTick]:
        """Simulated ticks every `step_s` seconds in (start, end], a walk of its own that ends at each coin's current
        price, so the live walk goes on from it (pure). Labelled `simulated` like every simulated tick, with a
        `granularity`, as backfilled history is; the 24 h change is measured on the walk (None for its first day)."""
        steps = int((end - start).total_seconds() // step_s)
        rng = random.Random(self._random.random())
        per_day = 86400 // step_s
        times = [end - dt.timedelta(seconds=step_s * (steps - i)) for i in range(steps + 1)]
        label = f"{step_s // 60}m" if step_s % 3600 else f"{step_s // 3600}h"
        ticks = []
        for coin in self.coins:
            price, supply, volume, sigma = self._state[coin.ticker]
            scale = sigma * math.sqrt(step_s / 60)  # sigma is per minute-scale step of the live walk
            prices, volumes = [price], [volume]
            for _ in range(steps):  # backwards from now
                prices.append(prices[-1] / math.exp(rng.gauss(0.0, scale)))
                volumes.append(volumes[-1] / math.exp(rng.gauss(0.0, scale * 2)))
            prices.reverse()
            volumes.reverse()
            if steps >= per_day:
                self._open[coin.ticker] = prices[-1 - per_day]  # the live ticks' 24 h change continues the walk's
            for i in range(1, steps + 1):
                ticks.append(PriceTick(
                    ticker=coin.ticker, timestamp=times[i], value=prices[i], source=self.name, volume_24h=volumes[i],
                    change_24h_pct=(prices[i] / prices[i - per_day] - 1) * 100 if i >= per_day else None,
                    market_cap=prices[i] * supply, granularity=label, fetched_at=end))
        return ticks

    async def fetch(self) -> list[PriceTick]:
        # Millisecond precision: that is what a BSON date keeps, and it makes each tick's _id distinct.
        now = dt.datetime.now(UTC)
        self.health.ok()
        return self.step(now.replace(microsecond=now.microsecond // 1000 * 1000))
