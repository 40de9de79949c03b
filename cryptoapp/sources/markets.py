"""The exchange source's pure parts: which pair prices a coin, a ccxt ticker as a PriceTick, and the conflator."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any, Iterable, Mapping, Optional

from cryptoapp.coins import Coin
from cryptoapp.prices.models import UTC, PriceTick
from cryptoapp.schema import is_finite_number

DEFAULT_QUOTES = ("USD", "USDT")  # preference order; the quote is kept on the tick, never converted
SLOT_GRACE_S = 0.5  # a slot's last quote is published this long after the slot ended, if no later quote came


class InvalidQuote(ValueError):
    """A ticker that cannot become a PriceTick; the message says why."""


@dataclasses.dataclass(frozen=True)
class MarketChoice:
    coin: Coin
    symbol: str  # ccxt's unified symbol, e.g. "BTC/USD"
    quote: str  # the quote currency, e.g. "USD"; the tick's `currency` is its lower case
    note: Optional[str] = None  # why this pair and not a preferred one (e.g. "ETH/USD is halted")


def choose_markets(markets: Mapping[str, Mapping[str, Any]], coins: Iterable[Coin],
                   quotes: tuple[str, ...] = DEFAULT_QUOTES) -> tuple[list[MarketChoice], dict[str, str]]:
    """For each coin the spot pair to stream, and for each coin left out (by ticker) the reason.

    A coin gets its pair against the first of `quotes` whose market is active; a halted pair is passed over
    for the next quote. A coin is never quoted in itself (USDT/USDT is no price of USDT): a stablecoin
    without a pair against another quote is left to the other sources.
    """
    by_base: dict[str, dict[str, Mapping[str, Any]]] = {}
    for market in markets.values():
        if market.get("spot") and market.get("base") and market.get("quote"):
            by_base.setdefault(str(market["base"]).upper(), {})[str(market["quote"]).upper()] = market
    chosen: list[MarketChoice] = []
    left_out: dict[str, str] = {}
    for coin in coins:
        pairs = by_base.get(coin.ticker.upper(), {})
        halted: list[str] = []
        for quote in quotes:
            market = pairs.get(quote.upper())
            if market is None or quote.upper() == coin.ticker.upper():
                continue
            if market.get("active") is False:
                halted.append(str(market["symbol"]))
                continue
            note = f"{', '.join(halted)} halted" if halted else None
            chosen.append(MarketChoice(coin, str(market["symbol"]), quote.upper(), note))
            break
        else:
            wanted = "/".join(q for q in quotes if q.upper() != coin.ticker.upper())
            left_out[coin.ticker] = (f"{', '.join(halted)} halted" if halted
                                     else f"no {coin.ticker} pair against {wanted}")
    return chosen, left_out


def _finite(value: Any) -> Optional[float]:
    return float(value) if is_finite_number(value) else None


def _positive(value: Any) -> Optional[float]:
    number = _finite(value)
    return number if number is not None and number > 0 else None


def _binance_ticker(ticker: Mapping[str, Any]) -> Optional[Mapping[str, Any]]:
    """The raw message of a Binance `<symbol>@ticker` update (`"e": "24hrTicker"`), where ccxt received one."""
    info = ticker.get("info")
    return info if isinstance(info, Mapping) and info.get("e") == "24hrTicker" else None


def event_time_ms(ticker: Mapping[str, Any]) -> int:
    """The exchange's own time of the update in ms. For a Binance 24hrTicker message its event time `E` and nothing
    else: without it ccxt stamps the statistics close time `C`, which is not when the price was observed. For other
    exchanges, ccxt's `timestamp`."""
    raw = _binance_ticker(ticker)
    value = raw.get("E") if raw is not None else ticker.get("timestamp")
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    if raw is not None:
        raise InvalidQuote(f"{ticker.get('symbol')}: the 24hrTicker message has no event time E ({value!r})")
    raise InvalidQuote(f"no event time (timestamp {value!r})")


def last_price(ticker: Mapping[str, Any]) -> Optional[float]:
    """The last trade price: a Binance 24hrTicker message's own `c` (a decimal string), never ccxt's `last`, which
    ccxt rebuilds as open + change when `c` is missing; for other exchanges ccxt's `last`."""
    raw = _binance_ticker(ticker)
    if raw is None:
        return _positive(ticker.get("last"))
    try:
        return _positive(float(raw["c"])) if isinstance(raw.get("c"), str) else None
    except ValueError:
        return None


def tick_from_ticker(ticker: Mapping[str, Any], choice: MarketChoice, source: str,
                     received_at: dt.datetime) -> PriceTick:
    """A PriceTick from one ccxt ticker dict of `choice`'s market; raises InvalidQuote naming the problem.

    value = last trade price, timestamp = the exchange's event time (ms kept), bid/ask and their sizes as
    given (a side without a positive price is null, its size too), volume_24h = the 24 h volume in the quote
    currency (Binance's `q`; the base volume `v` counts coins, not money), change_24h_pct as the exchange
    gives it, market_cap null (an exchange has none).
    """
    last = last_price(ticker)
    if last is None:
        given = raw.get("c") if (raw := _binance_ticker(ticker)) is not None else ticker.get("last")
        raise InvalidQuote(f"{choice.symbol}: last price {given!r} is not a positive number")
    ts = dt.datetime.fromtimestamp(event_time_ms(ticker) / 1000, UTC)
    bid, ask = _positive(ticker.get("bid")), _positive(ticker.get("ask"))
    bid_size = _finite(ticker.get("bidVolume")) if bid is not None else None
    ask_size = _finite(ticker.get("askVolume")) if ask is not None else None
    volume = _finite(ticker.get("quoteVolume"))
    return PriceTick(
        ticker=choice.coin.ticker, timestamp=ts, value=last, source=source, currency=choice.quote.lower(),
        bid_price=bid, ask_price=ask, bid_size=bid_size if bid_size is None or bid_size >= 0 else None,
        ask_size=ask_size if ask_size is None or ask_size >= 0 else None,
        volume_24h=volume if volume is None or volume >= 0 else None,
        change_24h_pct=_finite(ticker.get("percentage")), market_cap=None, fetched_at=received_at,
    )


class Conflator:
    """At most `max_hz` ticks a second per key: the event-time axis is cut into slots of 1/max_hz s, and
    of each slot only the last quote (by event time) goes on.

    A slot is done when a quote of a later slot arrives, or `grace_s` after it ended (`due`). A quote
    for a slot already sent is late and dropped, so a slot is never sent twice.
    """

    def __init__(self, max_hz: float, grace_s: float = SLOT_GRACE_S):
        if not max_hz > 0:
            raise ValueError(f"max_hz must be positive, not {max_hz!r}")
        self.slot_ms = 1000.0 / max_hz
        self.grace_ms = grace_s * 1000
        self._pending: dict[str, tuple[int, int, Any]] = {}  # key -> (slot, event ms, item)
        self._sent_slot: dict[str, int] = {}
        self.late = 0
        self.replaced = 0

    def add(self, key: str, event_ms: int, item: Any) -> list[Any]:
        """Take one quote; returns the items whose slot this quote closed (0 or 1)."""
        slot = int(event_ms // self.slot_ms)
        if slot <= self._sent_slot.get(key, -1):
            self.late += 1
            return []
        pending = self._pending.get(key)
        if pending is not None and pending[0] == slot:
            if event_ms >= pending[1]:
                self._pending[key] = (slot, event_ms, item)
            self.replaced += 1
            return []
        self._pending[key] = (slot, event_ms, item)
        if pending is None:
            return []
        self._sent_slot[key] = pending[0]
        return [pending[2]]

    def due(self, now_ms: float) -> list[Any]:
        """The pending items whose slot ended more than the grace time before `now_ms`."""
        out = []
        for key, (slot, _, item) in list(self._pending.items()):
            if (slot + 1) * self.slot_ms + self.grace_ms <= now_ms:
                del self._pending[key]
                self._sent_slot[key] = slot
                out.append(item)
        return out


def plan_lines(exchange_id: str, chosen: list[MarketChoice], left_out: Mapping[str, str],
               other_sources: tuple[str, ...]) -> tuple[Optional[str], Optional[str]]:
    """The start-up lines of a plan: the pair each coin streams from, and the coins the exchange does not list
    with where their prices come from instead; None for a line with nothing to say."""
    streaming = unlisted = None
    if chosen:
        streaming = f"{exchange_id}: streaming " + ", ".join(
            f"{c.coin.ticker} from {c.symbol}" + (f" ({c.note})" if c.note else "") for c in chosen)
    if left_out:
        one = len(left_out) == 1
        elsewhere = (f"{'it comes' if one else 'they come'} from {' and '.join(other_sources)} only" if other_sources
                     else f"{'it has' if one else 'they have'} no price (no other source is on in CRYPTO_SOURCES)")
        unlisted = (f"{exchange_id} does not list "
                    f"{'; '.join(f'{t} ({reason})' for t, reason in left_out.items())}; {elsewhere}")
    return streaming, unlisted
