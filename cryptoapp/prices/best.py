"""The best bid and the best ask across exchanges for one coin, from each exchange's latest quote (pure: no I/O).

A quote older than `max_age_s` is left out; a side no fresh quote has is null, never invented. The combined spread
is best ask - best bid, in price and in bps of their mid; negative when the book is crossed (one exchange bids
above another's ask). Ties go to the exchange listed first (CRYPTO_EXCHANGES' order).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any, Iterable, Optional

DEFAULT_MAX_AGE_S = 10.0  # ten of the ~1 Hz ticker's updates missed: no longer a price one could trade at


@dataclasses.dataclass(frozen=True)
class Quote:
    """One exchange's latest quote for a coin: bid, ask (either may be None) and the exchange's event time."""

    exchange: str
    bid: Optional[float]
    ask: Optional[float]
    at: dt.datetime
    currency: Optional[str] = None  # the quote currency (usd, usdt): quotes in different ones are never compared


def _best(quotes: list[Quote], side: str) -> Optional[Quote]:
    priced = [q for q in quotes if getattr(q, side) is not None]
    if not priced:
        return None
    pick = max if side == "bid" else min
    # max/min keep the first of equal values: a tie goes to the exchange listed first.
    return pick(priced, key=lambda q: getattr(q, side))


def best_quote(ticker: str, quotes: Iterable[Quote], now: dt.datetime, max_age_s: float = DEFAULT_MAX_AGE_S,
               currency: Optional[str] = None) -> dict[str, Any]:
    """The JSON of /prices/<TICKER>/best/: best bid and ask with their exchanges, the combined spread (absolute and
    in bps of the mid), and every quote with its age in seconds, `used` False for one left out as too old or as
    quoted in another currency than `currency` (default: the first quote's)."""
    quotes = list(quotes)
    currency = currency or next((q.currency for q in quotes), None)
    ages = {q.exchange: (now - q.at).total_seconds() for q in quotes}
    used = {q.exchange: ages[q.exchange] <= max_age_s and q.currency == currency for q in quotes}
    fresh = [q for q in quotes if used[q.exchange]]
    bid, ask = _best(fresh, "bid"), _best(fresh, "ask")
    spread = spread_bps = None
    if bid is not None and ask is not None:
        spread = ask.ask - bid.bid
        mid = (ask.ask + bid.bid) / 2
        spread_bps = spread / mid * 10_000 if mid > 0 else None
    return {
        "ticker": ticker, "currency": currency,
        "best_bid": bid.bid if bid else None, "best_bid_exchange": bid.exchange if bid else None,
        "best_ask": ask.ask if ask else None, "best_ask_exchange": ask.exchange if ask else None,
        "spread": spread, "spread_bps": spread_bps, "crossed": spread is not None and spread < 0,
        "max_age_s": max_age_s,
        "quotes": [{"exchange": q.exchange, "currency": q.currency, "bid": q.bid, "ask": q.ask,
                    "timestamp": q.at.isoformat(), "age_s": round(ages[q.exchange], 3), "used": used[q.exchange]}
                   for q in quotes],
    }
