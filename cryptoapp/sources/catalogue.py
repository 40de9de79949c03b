"""The coins a started worker prices: CRYPTO_SYMBOLS resolved through CoinGecko's catalogue when CoinGecko is a
source, else through the cached catalogue or the built-in list."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from cryptoapp.coins import Coin, load_catalogue, read_catalogue, resolve_all
from cryptoapp.schema import COINGECKO
from cryptoapp.settings import Settings
from cryptoapp.sources.coingecko import CoinGeckoClient

log = logging.getLogger(__name__)

CATALOGUE_WAIT = 15.0  # seconds start-up waits for CoinGecko's coin list before using the cached or built-in one


async def resolve_coins(settings: Settings, budget) -> tuple[Coin, ...]:
    """The coins through CoinGecko's catalogue (/coins/markets, cached a day in CRYPTO_COINS_CACHE) when
    CoinGecko is a source; else, or when it does not answer in time, the cached catalogue or the built-in
    list (load_catalogue and this function log one warning when CoinGecko was asked and did not answer).
    `budget` is the request budget the calls share with the polls (cryptoapp.sources.budget)."""
    s = settings
    path = Path(s.coins_cache)
    if COINGECKO not in s.sources:
        catalogue = read_catalogue(path)  # what CoinGecko said last time, if it ever did; no call
    else:
        try:
            async with asyncio.timeout(CATALOGUE_WAIT):
                async with CoinGeckoClient(s.coingecko_api_url, s.api_key, budget,
                                           timeout=s.coingecko_timeout) as client:
                    catalogue = await load_catalogue(client, path, s.symbols)
        except TimeoutError:
            catalogue = read_catalogue(path)
            log.warning("CoinGecko's coin list did not come within %.0f s; using %s", CATALOGUE_WAIT,
                        f"the cached one of {catalogue.fetched_at:%Y-%m-%d}" if catalogue else "the built-in list")
    coins = resolve_all(s.symbols, catalogue)
    log.info("coins (%s): %s", f"CoinGecko's list of {catalogue.fetched_at:%Y-%m-%d}" if catalogue else
             "the built-in list", ", ".join(c.ticker for c in coins))
    return coins
