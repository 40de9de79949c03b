"""The live tab's best bid and ask across exchanges, pure (no driver, no streamlit): one row per coin that two or more
exchanges quote, from crypto.latest's rows, by the worker's own rule (cryptoapp/prices/best.py)."""

from __future__ import annotations

import datetime as dt
import math

import pandas as pd

from cryptoapp.prices.best import Best, Quote, best
from dashboard import formatting

COLUMNS = ("Coin", "Best bid", "Bid on", "Best ask", "Ask on", "Spread", "Exchanges", "Left out (stale)")


def _number(x) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)


def quotes_of(latest: pd.DataFrame) -> dict[str, list[Quote]]:
    """coin -> the exchanges' quotes in its latest rows (CoinGecko's and the demo's rows quote nothing)."""
    coins: dict[str, list[Quote]] = {}
    for row in latest.itertuples():
        quote = Quote.of(row)
        if quote is not None:
            coins.setdefault(row.sensor_id, []).append(_cleaned(quote, row.timestamp.to_pydatetime()))
    return coins


def _cleaned(quote: Quote, timestamp: dt.datetime) -> Quote:
    """The quote with the frame's NaN as None and its pandas time as a datetime."""
    return Quote(quote.exchange, timestamp, _number(quote.bid), _number(quote.bid_size), _number(quote.ask),
                 _number(quote.ask_size), quote.currency)


def _row(coin: str, got: Best) -> dict:
    def side(quote: Quote | None, price: float | None) -> tuple[str, str]:
        if quote is None:
            return formatting.MISSING, formatting.MISSING
        return (formatting.price(price, quote.currency),
                f"{quote.exchange} ({formatting.age(quote.timestamp, got.as_of)})")

    bid, bid_on = side(got.bid, got.bid.bid if got.bid else None)
    ask, ask_on = side(got.ask, got.ask.ask if got.ask else None)
    spread = formatting.MISSING if got.spread is None else (
        f"{got.spread_bps:,.1f} bps" + (" (crossed)" if got.spread < 0 else ""))
    return dict(zip(COLUMNS, (coin, bid, bid_on, ask, ask_on, spread, ", ".join(q.exchange for q in got.quotes),
                              ", ".join(got.left_out) or "")))


def best_table(latest: pd.DataFrame, now: dt.datetime, max_age_s: float) -> pd.DataFrame:
    """A row per coin quoted by two or more exchanges (one exchange is its own card already); empty otherwise."""
    rows = [_row(coin, best(coin, quotes, now, max_age_s)) for coin, quotes in quotes_of(latest).items()
            if len({q.exchange for q in quotes}) >= 2]
    return pd.DataFrame(rows, columns=list(COLUMNS))
