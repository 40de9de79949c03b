"""The coins a worker prices: CRYPTO_SYMBOLS resolved through CoinGecko's catalogue when CoinGecko is a source, else
through the cached catalogue or the built-in list; a name none of them knows is left out with one line."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Iterable, Optional

from cryptoapp.coins import Catalogue, Coin, known_coin, load_catalogue, nearest_ids, parse_top, read_catalogue
from cryptoapp.coins import resolve_all, spellings
from cryptoapp.schema import COINGECKO, SIMULATED
from cryptoapp.settings import Settings

log = logging.getLogger(__name__)

CATALOGUE_WAIT = 15.0  # seconds start-up waits for CoinGecko's coin list before using the cached or built-in one


def catalogue_name(catalogue: Optional[Catalogue]) -> str:
    return f"CoinGecko's list of {catalogue.fetched_at:%Y-%m-%d}" if catalogue else "the built-in list"


def pick_known(symbols: Iterable[str], catalogue: Optional[Catalogue]) -> tuple[tuple[Coin, ...], Optional[str]]:
    """The coins of `symbols` that the catalogue (None: the built-in list) knows, in order, and one line naming
    the others with the known ids spelled most like them (None when it knows every one). Pure."""
    symbols = list(symbols)
    unknown = [s for s in symbols if parse_top(s) is None and known_coin(s, catalogue) is None]
    coins = resolve_all([s for s in symbols if s not in unknown], catalogue)
    if not unknown:
        return coins, None
    names = spellings(catalogue)
    each = "; ".join(f"{s!r} (nearest known ids: {', '.join(nearest_ids(s, names)) or 'none'})" for s in unknown)
    left = ", ".join(c.ticker for c in coins) or "no coin at all"
    return coins, (f"CRYPTO_SYMBOLS names {'a coin' if len(unknown) == 1 else 'coins'} not in "
                   f"{catalogue_name(catalogue)}: {each}; left out, pricing {left}. Name coins by CoinGecko id or "
                   "ticker, e.g. bitcoin or BTC")


def cached_catalogue(settings: Settings) -> Optional[Catalogue]:
    """The catalogue the coins resolve through without calling CoinGecko: none with the simulated source (it
    simulates the built-in coins only), else the cached one, if CoinGecko ever answered."""
    return None if settings.polled_source == SIMULATED else read_catalogue(Path(settings.coins_cache))


def tracked_coins(settings: Settings) -> tuple[tuple[Coin, ...], Optional[Catalogue]]:
    """The coins a worker with these settings prices, resolved without calling CoinGecko (commands, the CLI's
    alerts), and the catalogue they were resolved through."""
    catalogue = cached_catalogue(settings)
    return pick_known(settings.symbols, catalogue)[0], catalogue


async def resolve_coins(settings: Settings, budget) -> tuple[Coin, ...]:
    """The coins through CoinGecko's catalogue (/coins/markets, cached a day in CRYPTO_COINS_CACHE) when
    CoinGecko is a source; else, or when it does not answer in time, the cached catalogue or the built-in
    list (load_catalogue and this function log one warning when CoinGecko was asked and did not answer).
    A name the catalogue does not know is left out, with one warning. `budget` is the request budget the calls
    share with the polls (cryptoapp.sources.budget)."""
    s = settings
    path = Path(s.coins_cache)
    if COINGECKO not in s.sources:
        catalogue = cached_catalogue(s)  # what CoinGecko said last time, if it ever did; no call
    else:
        from cryptoapp.sources.coingecko import CoinGeckoClient

        try:
            async with asyncio.timeout(CATALOGUE_WAIT):
                async with CoinGeckoClient(s.coingecko_api_url, s.api_key, budget,
                                           timeout=s.coingecko_timeout) as client:
                    catalogue = await load_catalogue(client, path, s.symbols)
        except TimeoutError:
            catalogue = read_catalogue(path)
            log.warning("CoinGecko's coin list did not come within %.0f s; using %s", CATALOGUE_WAIT,
                        f"the cached one of {catalogue.fetched_at:%Y-%m-%d}" if catalogue else "the built-in list")
    coins, unknown = pick_known(s.symbols, catalogue)
    if unknown:
        log.warning("%s", unknown)
    log.info("coins (%s): %s", catalogue_name(catalogue), ", ".join(c.ticker for c in coins))
    return coins
