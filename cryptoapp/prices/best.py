"""The best bid and the best ask of one coin across the exchanges that quote it: which exchange holds each side,
the combined spread, and each quote's age. Pure: the worker's web view and the dashboard's live tab both use it.

A quote is an exchange series' latest tick (bid, ask, their sizes, the exchange's event time). Only exchanges
quote: CoinGecko's and the demo's series have no bid or ask and are never part of it. A quote older than `max_age_s`
is left out (a stalled stream must not hold the best price), and so is a side that is not a positive number. With
no fresh bid (or ask) that side is null: never invented. The spread is ask - bid; negative means the book is
crossed across exchanges (one exchange's bid above another's ask), which is shown as it is, not hidden.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from collections.abc import Iterable
from typing import Any, Optional

from cryptoapp.schema import SEED_ID_SOURCES, iso_z

DEFAULT_MAX_AGE_S = 10.0  # ten missed updates of a 1 Hz ticker stream (Binance's @ticker)


@dataclasses.dataclass(frozen=True)
class Quote:
    """One exchange's latest quote of a coin."""

    exchange: str
    timestamp: dt.datetime
    bid: Optional[float] = None
    bid_size: Optional[float] = None
    ask: Optional[float] = None
    ask_size: Optional[float] = None
    currency: Optional[str] = None

    @classmethod
    def of(cls, tick: Any) -> Optional["Quote"]:
        """The quote in a tick (a PriceTick or anything with its fields); None for a source that does not quote."""
        if tick.source in SEED_ID_SOURCES:
            return None
        return cls(tick.source, tick.timestamp, tick.bid_price, tick.bid_size, tick.ask_price, tick.ask_size,
                   getattr(tick, "currency", None))


def _positive(x: Optional[float]) -> bool:
    return x is not None and isinstance(x, (int, float)) and math.isfinite(x) and x > 0


@dataclasses.dataclass(frozen=True)
class Best:
    """The best bid and ask of one coin across exchanges, with where each is and how old."""

    ticker: str
    as_of: dt.datetime
    max_age_s: float
    quotes: tuple[Quote, ...]  # the fresh quotes the best is taken from, best bid first
    left_out: tuple[str, ...]  # exchanges whose quote was older than max_age_s
    bid: Optional[Quote] = None
    ask: Optional[Quote] = None

    @property
    def spread(self) -> Optional[float]:
        return self.ask.ask - self.bid.bid if self.bid and self.ask else None

    @property
    def spread_bps(self) -> Optional[float]:
        """The spread in basis points of the mid ((bid + ask) / 2); negative when crossed."""
        if not (self.bid and self.ask):
            return None
        return 1e4 * self.spread / ((self.bid.bid + self.ask.ask) / 2)

    def age_s(self, quote: Quote) -> float:
        return (self.as_of - quote.timestamp).total_seconds()

    def to_json(self) -> dict[str, Any]:
        def side(quote: Optional[Quote], price: str, size: str) -> Optional[dict]:
            if quote is None:
                return None
            return {"exchange": quote.exchange, "price": getattr(quote, price), "size": getattr(quote, size),
                    "currency": quote.currency, "timestamp": iso_z(quote.timestamp),
                    "age_s": round(self.age_s(quote), 3)}

        spread_bps = self.spread_bps
        return {"ticker": self.ticker, "as_of": iso_z(self.as_of), "max_age_s": self.max_age_s,
                "best_bid": side(self.bid, "bid", "bid_size"), "best_ask": side(self.ask, "ask", "ask_size"),
                "spread": self.spread, "spread_bps": None if spread_bps is None else round(spread_bps, 3),
                "crossed": self.spread is not None and self.spread < 0,
                "exchanges": [{"exchange": q.exchange, "bid": q.bid, "ask": q.ask, "currency": q.currency,
                               "age_s": round(self.age_s(q), 3)} for q in self.quotes],
                "left_out_stale": list(self.left_out)}


def best(ticker: str, quotes: Iterable[Quote], now: dt.datetime, max_age_s: float = DEFAULT_MAX_AGE_S) -> Best:
    """The best bid (highest) and ask (lowest) among the fresh quotes; a tie goes to the fresher quote, then to the
    exchange first in name order, so the answer never flickers between equal quotes."""
    fresh, stale = [], []
    for quote in quotes:
        (stale if (now - quote.timestamp).total_seconds() > max_age_s else fresh).append(quote)
    bids = [q for q in fresh if _positive(q.bid)]
    asks = [q for q in fresh if _positive(q.ask)]
    bid = min(bids, key=lambda q: (-q.bid, -q.timestamp.timestamp(), q.exchange), default=None)
    ask = min(asks, key=lambda q: (q.ask, -q.timestamp.timestamp(), q.exchange), default=None)
    ordered = sorted(fresh, key=lambda q: (-(q.bid or 0), q.exchange))
    return Best(ticker, now, max_age_s, tuple(ordered), tuple(sorted(q.exchange for q in stale)), bid, ask)
