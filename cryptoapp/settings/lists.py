"""The parsers of the worker's list settings: coins (CRYPTO_SYMBOLS, --symbols) and sources (CRYPTO_SOURCES)."""

import re

from cryptoapp.coins import parse_top
from cryptoapp.schema import COINGECKO, SIMULATED, SOURCES
from cryptoapp.settings.base import ConfigError

_SYMBOL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def parse_symbols(text: str) -> tuple[str, ...]:
    """Coins as CoinGecko ids, tickers or `top:N` (the N largest by market cap), separated by commas and/or
    spaces; order kept, repeats dropped."""
    symbols = [s for s in re.split(r"[,\s]+", text.strip()) if s]
    if not symbols:
        raise ConfigError("CRYPTO_SYMBOLS is empty: name at least one coin, e.g. 'bitcoin ethereum' or 'BTC,ETH'")
    bad = [s for s in symbols if not (_SYMBOL.fullmatch(s) or parse_top(s) is not None)]
    if bad:
        raise ConfigError(f"CRYPTO_SYMBOLS has invalid coin names {bad}: use CoinGecko ids or tickers such as "
                          "'bitcoin' or 'BTC', or top:N for the N largest coins (N from 1)")
    return tuple(dict.fromkeys(symbols))


def parse_sources(text: str) -> tuple[str, ...]:
    """CRYPTO_SOURCES: comma (or space) separated source names, order kept, repeats dropped. CoinGecko and the
    simulated source write the same series (the simulated one stands in for CoinGecko), so not both."""
    names = tuple(dict.fromkeys(n.lower() for n in re.split(r"[,\s]+", str(text).strip()) if n))
    if not names:
        raise ValueError(f"is empty: name one or more of {', '.join(SOURCES)}")
    unknown = [n for n in names if n not in SOURCES]
    if unknown:
        raise ValueError(f"names unknown sources {unknown}: use {', '.join(SOURCES)}, comma separated (the exchange "
                         "itself is CRYPTO_EXCHANGE)")
    if COINGECKO in names and SIMULATED in names:
        raise ValueError(f"has both {COINGECKO} and {SIMULATED}, whose ticks would share one series: keep one")
    return names
