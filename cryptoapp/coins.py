"""Maps the coins a user names (CoinGecko ids or tickers) to CoinGecko ids and display tickers."""

from __future__ import annotations

import dataclasses
import re

# CoinGecko id -> ticker for well-known coins; any other CoinGecko id is accepted as given.
KNOWN_COINS = {
    "bitcoin": "BTC", "ethereum": "ETH", "binancecoin": "BNB", "tether": "USDT", "usd-coin": "USDC",
    "solana": "SOL", "ripple": "XRP", "cardano": "ADA", "dogecoin": "DOGE", "tron": "TRX",
    "polkadot": "DOT", "litecoin": "LTC", "chainlink": "LINK", "avalanche-2": "AVAX",
    "bitcoin-cash": "BCH", "stellar": "XLM", "dai": "DAI", "shiba-inu": "SHIB", "uniswap": "UNI",
    "matic-network": "MATIC", "toncoin": "TON", "monero": "XMR", "cosmos": "ATOM",
}
_BY_TICKER = {ticker: coin_id for coin_id, ticker in KNOWN_COINS.items()}


@dataclasses.dataclass(frozen=True)
class Coin:
    coin_id: str   # CoinGecko's id, e.g. "usd-coin"
    ticker: str    # the key everywhere downstream, e.g. "USDC"


def resolve(symbol: str) -> Coin:
    """A coin from a CoinGecko id ("bitcoin") or a known ticker ("BTC", "btc")."""
    if symbol.upper() in _BY_TICKER:
        coin_id = _BY_TICKER[symbol.upper()]
        return Coin(coin_id, KNOWN_COINS[coin_id])
    coin_id = symbol.lower()
    if coin_id in KNOWN_COINS:
        return Coin(coin_id, KNOWN_COINS[coin_id])
    # An id we have no ticker for: its letters and digits, upper-cased, stand in as its key.
    return Coin(coin_id, re.sub(r"[^A-Z0-9]", "", coin_id.upper())[:15] or "COIN")


def resolve_all(symbols) -> tuple[Coin, ...]:
    return tuple(dict.fromkeys(resolve(s) for s in symbols))
