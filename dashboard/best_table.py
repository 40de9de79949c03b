"""The live tab's best bid and ask across exchanges: one row per coin and quote currency that two or more exchanges
quote, from each exchange's latest tick (pure: the rule is cryptoapp/prices/best.py, the worker's own)."""

from __future__ import annotations

import datetime as dt

import pandas as pd

from cryptoapp.prices.best import DEFAULT_MAX_AGE_S, Quote, best_quote
from cryptoapp.schema import COINGECKO, SIMULATED
from dashboard import formatting

COLUMNS = ["Coin", "Best bid", "Bid on", "Best ask", "Ask on", "Spread", "Quotes (age)"]


def best_frame(latest: pd.DataFrame, now: dt.datetime, max_age_s: float = DEFAULT_MAX_AGE_S) -> pd.DataFrame:
    """`latest` is data.latest(): a row per series. Quotes in different currencies (USD, USDT) are never compared:
    each currency is its own row. A stale quote is listed with its age and left out of the best sides."""
    quoted = latest[~latest["source"].isin([COINGECKO, SIMULATED])]
    rows = []
    for (coin, currency), group in quoted.groupby(["sensor_id", "currency"], sort=False, dropna=False):
        if group["source"].nunique() < 2:
            continue
        quotes = [Quote(t.source, None if pd.isna(t.bid_price) else float(t.bid_price),
                        None if pd.isna(t.ask_price) else float(t.ask_price), t.timestamp.to_pydatetime(), currency)
                  for t in group.itertuples()]
        best = best_quote(coin, quotes, now, max_age_s)
        spread = formatting.spread(best["spread"], best["spread_bps"], currency)
        rows.append({
            "Coin": f"{coin} ({str(currency).upper()})",
            "Best bid": formatting.price(best["best_bid"], currency), "Bid on": formatting.text(best["best_bid_exchange"]),
            "Best ask": formatting.price(best["best_ask"], currency), "Ask on": formatting.text(best["best_ask_exchange"]),
            "Spread": spread + (" (crossed)" if best["crossed"] else ""),
            "Quotes (age)": ", ".join(f"{q['exchange']} {formatting.age(dt.datetime.fromisoformat(q['timestamp']), now)}"
                                      + ("" if q["used"] else " (too old, left out)") for q in best["quotes"]),
        })
    return pd.DataFrame(rows, columns=COLUMNS)
