"""Maps the coins a user names (CoinGecko ids, tickers or `top:N`) to CoinGecko ids and display tickers."""

from __future__ import annotations

import dataclasses
import datetime as dt
import difflib
import json
import logging
import math
import os
import re
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional

from cryptoapp.schema import UTC, is_finite_number

log = logging.getLogger(__name__)

# CoinGecko id -> ticker for well-known coins, largest first; these tickers are fixed, whatever the catalogue says.
KNOWN_COINS = {
    "bitcoin": "BTC", "ethereum": "ETH", "binancecoin": "BNB", "tether": "USDT", "usd-coin": "USDC",
    "solana": "SOL", "ripple": "XRP", "cardano": "ADA", "dogecoin": "DOGE", "tron": "TRX",
    "polkadot": "DOT", "litecoin": "LTC", "chainlink": "LINK", "avalanche-2": "AVAX",
    "bitcoin-cash": "BCH", "stellar": "XLM", "dai": "DAI", "shiba-inu": "SHIB", "uniswap": "UNI",
    "matic-network": "MATIC", "toncoin": "TON", "monero": "XMR", "cosmos": "ATOM",
}
_BY_TICKER = {ticker: coin_id for coin_id, ticker in KNOWN_COINS.items()}
TOP_RE = re.compile(r"top:(\d+)", re.IGNORECASE)
CATALOGUE_MAX_AGE = dt.timedelta(days=1)  # CoinGecko's symbols and ranks, refreshed daily
MARKETS_PAGE = 250  # /coins/markets answers at most 250 coins per page


@dataclasses.dataclass(frozen=True)
class Coin:
    coin_id: str   # CoinGecko's id, e.g. "usd-coin"
    ticker: str    # the key everywhere downstream, e.g. "USDC"


def resolve(symbol: str) -> Coin:
    """A coin from a CoinGecko id ("bitcoin") or a known ticker ("BTC", "btc"), without the catalogue."""
    if symbol.upper() in _BY_TICKER:
        coin_id = _BY_TICKER[symbol.upper()]
        return Coin(coin_id, KNOWN_COINS[coin_id])
    coin_id = symbol.lower()
    if coin_id in KNOWN_COINS:
        return Coin(coin_id, KNOWN_COINS[coin_id])
    # An id we have no ticker for: its letters and digits, upper-cased, stand in as its key.
    return Coin(coin_id, re.sub(r"[^A-Z0-9]", "", coin_id.upper())[:15] or "COIN")


def resolve_all(symbols, catalogue: Optional["Catalogue"] = None) -> tuple[Coin, ...]:
    """The coins of CRYPTO_SYMBOLS, in order, repeats dropped; `top:N` is the N largest by market cap.

    With a catalogue (CoinGecko's own ids and symbols) every name resolves through it; without one, through
    the built-in list, and `top:N` is the first N of it.
    """
    coins: list[Coin] = []
    for symbol in symbols:
        top = parse_top(symbol)
        if top is not None:
            coins += catalogue.top(top) if catalogue is not None else [resolve(c) for c in list(KNOWN_COINS)[:top]]
        else:
            coins.append(catalogue.resolve(symbol) if catalogue is not None else resolve(symbol))
    return tuple(dict.fromkeys(coins))


def parse_top(symbol: str) -> Optional[int]:
    """N for "top:N" (N >= 1), else None."""
    match = TOP_RE.fullmatch(symbol.strip())
    return int(match.group(1)) if match and int(match.group(1)) >= 1 else None


# --- CoinGecko's catalogue (/coins/markets) -----------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Listing:
    """One coin as /coins/markets lists it."""

    coin_id: str
    symbol: str  # CoinGecko's symbol, lower case, e.g. "btc"
    name: str
    market_cap: Optional[float]
    rank: Optional[int]  # market_cap_rank; None for coins CoinGecko does not rank


def parse_coins_markets(payload: Any) -> list[Listing]:
    """The listings of one /coins/markets answer (shared/reference/coingecko-coins-markets.json); rows without
    an id or a symbol are skipped. Pure."""
    if not isinstance(payload, list):
        raise ValueError(f"/coins/markets answered JSON {type(payload).__name__}, not a list")
    out = []
    for row in payload:
        if not isinstance(row, dict):
            continue
        coin_id, symbol = row.get("id"), row.get("symbol")
        if not isinstance(coin_id, str) or not coin_id or not isinstance(symbol, str) or not symbol:
            continue
        cap, rank = row.get("market_cap"), row.get("market_cap_rank")
        cap = float(cap) if is_finite_number(cap) else None
        rank = rank if isinstance(rank, int) and not isinstance(rank, bool) and rank > 0 else None
        out.append(Listing(coin_id, symbol, str(row.get("name") or coin_id), cap, rank))
    return out


def plain_ticker(symbol: str) -> Optional[str]:
    """A CoinGecko symbol as a ticker: upper case, letters and digits only, at most 15; None if nothing is left."""
    ticker = re.sub(r"[^A-Z0-9]", "", symbol.upper())[:15]
    return ticker or None


def _by_size(listing: Listing) -> tuple:
    return (listing.rank is None, listing.rank or 0, -(listing.market_cap or 0), listing.coin_id)


def assign_tickers(listings: Iterable[Listing], given: Mapping[str, str]) -> dict[str, str]:
    """Each listed coin's ticker: the tickers in `given` (id -> ticker) stay as they are; any other coin gets
    its symbol upper-cased, or, when a coin already holds that ticker, the symbol with the smallest number
    from 2 up that is free ("TON2"). Coins are taken largest first, so of two coins sharing a symbol the
    larger gets it plain; a ticker once given never moves to another coin (the caller keeps `given`). Pure.
    """
    tickers = dict(given)
    taken = set(tickers.values())
    for listing in sorted(listings, key=_by_size):
        if listing.coin_id in tickers:
            continue
        base = plain_ticker(listing.symbol) or plain_ticker(listing.coin_id) or "COIN"
        ticker, n = base, 1
        while ticker in taken:
            n += 1
            ticker = base[:15 - len(str(n))] + str(n)
        tickers[listing.coin_id] = ticker
        taken.add(ticker)
    return tickers


@dataclasses.dataclass
class Catalogue:
    """CoinGecko's listings and the tickers given to them, as cached on disk."""

    listings: dict[str, Listing]  # by CoinGecko id
    tickers: dict[str, str]  # CoinGecko id -> ticker (built-in ones included)
    fetched_at: dt.datetime

    @classmethod
    def build(cls, listings: Iterable[Listing], fetched_at: dt.datetime,
              given: Optional[Mapping[str, str]] = None) -> "Catalogue":
        listings = list(listings)
        return cls({x.coin_id: x for x in listings},
                   assign_tickers(listings, {**KNOWN_COINS, **(given or {})}), fetched_at)

    def is_fresh(self, now: dt.datetime) -> bool:
        return now - self.fetched_at < CATALOGUE_MAX_AGE

    def coin(self, coin_id: str) -> Coin:
        return Coin(coin_id, self.tickers.get(coin_id) or resolve(coin_id).ticker)

    def resolve(self, symbol: str) -> Coin:
        """A CoinGecko id, or a ticker: a ticker given to a coin (BTC, TON2), else the largest coin with that
        symbol. A name the catalogue does not know is taken as an id, as without it."""
        if symbol.lower() in self.listings or symbol.lower() in KNOWN_COINS:
            return self.coin(symbol.lower())
        by_ticker = {t: i for i, t in self.tickers.items()}
        if symbol.upper() in by_ticker:
            return self.coin(by_ticker[symbol.upper()])
        same = sorted((x for x in self.listings.values() if x.symbol.lower() == symbol.lower()), key=_by_size)
        if same:
            return self.coin(same[0].coin_id)
        return resolve(symbol)

    def top(self, n: int) -> list[Coin]:
        """The n largest coins by market cap that CoinGecko ranks."""
        ranked = sorted((x for x in self.listings.values() if x.rank is not None), key=_by_size)
        return [self.coin(x.coin_id) for x in ranked[:n]]

    def missing(self, names: Iterable[str]) -> list[str]:
        """The names (ids or tickers) this catalogue cannot resolve, and the N of a top:N it cannot fill."""
        out = []
        for name in names:
            top = parse_top(name)
            if top is not None:
                if len([x for x in self.listings.values() if x.rank is not None]) < top:
                    out.append(name)
            elif resolve_name(self, name) is None:
                out.append(name)
        return out

    def to_json(self) -> dict[str, Any]:
        return {"fetched_at": self.fetched_at.isoformat(), "tickers": self.tickers,
                "listings": [dataclasses.asdict(x) for x in self.listings.values()]}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "Catalogue":
        listings = {x["coin_id"]: Listing(**x) for x in data["listings"]}
        fetched_at = dt.datetime.fromisoformat(data["fetched_at"])
        return cls(listings, {**dict(data["tickers"]), **KNOWN_COINS}, fetched_at)


def resolve_name(catalogue: Catalogue, name: str) -> Optional[Coin]:
    """The coin `name` means in the catalogue, or None when it knows no such id, ticker or symbol."""
    low = name.lower()
    if low in catalogue.listings or low in KNOWN_COINS:
        return catalogue.coin(low)
    if name.upper() in set(catalogue.tickers.values()) or any(x.symbol.lower() == low
                                                             for x in catalogue.listings.values()):
        return catalogue.resolve(name)
    return None


def known_coin(name: str, catalogue: Optional[Catalogue] = None) -> Optional[Coin]:
    """The coin `name` (a CoinGecko id or a ticker) means in the catalogue, else in the built-in list; None when
    it knows no such coin."""
    if catalogue is not None:
        return resolve_name(catalogue, name)
    return resolve(name) if name.upper() in _BY_TICKER or name.lower() in KNOWN_COINS else None


def spellings(catalogue: Optional[Catalogue] = None) -> dict[str, Coin]:
    """Every name CRYPTO_SYMBOLS takes for a coin the catalogue (else the built-in list) knows, lower case -> the
    coin: its symbol (the largest coin's), its ticker, its CoinGecko id, each winning over the one before."""
    if catalogue is None:
        return {**{t.lower(): Coin(i, t) for i, t in KNOWN_COINS.items()}, **{i: resolve(i) for i in KNOWN_COINS}}
    names = {}
    for listing in sorted(catalogue.listings.values(), key=_by_size):
        names.setdefault(listing.symbol.lower(), catalogue.coin(listing.coin_id))
    names.update({t.lower(): catalogue.coin(i) for i, t in catalogue.tickers.items()})
    return {**names, **{i: catalogue.coin(i) for i in (*catalogue.listings, *KNOWN_COINS)}}


def nearest_ids(name: str, names: dict[str, Coin], n: int = 3) -> list[str]:
    """The CoinGecko ids of the known coins spelled most like `name` (difflib's ratio 0.6 and above), best first."""
    return list(dict.fromkeys(names[m].coin_id for m in difflib.get_close_matches(name.lower(), names, n=n)))


def read_catalogue(path: Path) -> Optional[Catalogue]:
    """The catalogue cached at `path`, or None when there is none or it cannot be read."""
    try:
        return Catalogue.from_json(json.loads(path.read_text()))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("coin catalogue %s is unreadable (%s); it will be fetched again", path, exc)
        return None


def write_catalogue(path: Path, catalogue: Catalogue) -> None:
    """Replace the cached catalogue atomically (a crash never leaves half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(catalogue.to_json()))
    os.replace(tmp, path)


async def load_catalogue(client, path: Path, symbols: Iterable[str],
                         now: Optional[dt.datetime] = None) -> Optional[Catalogue]:
    """CoinGecko's catalogue for `symbols`: the cache at `path` while under a day old and covering them,
    else fetched (/coins/markets: the largest 250 a page, as many pages as a top:N needs, and the ids named
    that are not among them) and cached. Tickers given before are kept. Offline: the stale cache, or None
    (the caller then uses the built-in list); one warning either way.

    `client` is a started cryptoapp.sources.coingecko.CoinGeckoClient.
    """
    now = now or dt.datetime.now(UTC)
    symbols = list(symbols)
    cached = read_catalogue(path)
    if cached is not None and cached.is_fresh(now) and not cached.missing(symbols):
        return cached
    pages = max([1] + [math.ceil(parse_top(s) / MARKETS_PAGE) for s in symbols if parse_top(s)])
    try:
        listings: list[Listing] = []
        for page in range(1, pages + 1):
            listings += parse_coins_markets(await client.coins_markets(per_page=MARKETS_PAGE, page=page))
        known = {x.coin_id for x in listings} | {x.symbol.lower() for x in listings}
        named = [s.lower() for s in symbols if parse_top(s) is None and s.lower() not in known
                 and s.upper() not in _BY_TICKER]
        if named:
            listings += parse_coins_markets(await client.coins_markets(ids=named, per_page=MARKETS_PAGE))
    except Exception as exc:  # offline, rate limited, a bad answer: the coins still resolve, less well
        fallback = "the cached one of " + cached.fetched_at.strftime("%Y-%m-%d") if cached else "the built-in list"
        log.warning("CoinGecko's coin list is unavailable (%s); using %s", exc, fallback)
        return cached
    catalogue = Catalogue.build(listings, now, given=cached.tickers if cached else None)
    try:
        write_catalogue(path, catalogue)
    except OSError as exc:
        log.warning("coin catalogue not cached at %s (%s); it will be fetched again at the next start", path, exc)
    return catalogue
