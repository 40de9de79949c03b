"""True OHLCV bars from trades, pure: a minute holds its trades by trade id (a trade seen twice counts once), its bar is
computed from them with numpy (open and close by trade time, ties by trade id), coarser bars merge minutes."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence

import numpy as np

from cryptoapp.candles.models import Bar, ms_time
from cryptoapp.schema import RESOLUTIONS, UTC, bar_start

MINUTE = RESOLUTIONS["1m"]


def minute_key(series: str, start_s: int) -> str:
    """The trade_minutes table's key of a minute of a series."""
    return f"{series}@{start_s // MINUTE}"


def new_minute(series: str, ticker: str, currency: str, start_s: int) -> dict:
    """A minute as the table holds it: trades by id (as text, JSON's keys) -> [time ms, price, amount]."""
    return {"series": series, "ticker": ticker, "currency": currency, "start_s": start_s, "trades": {}}


def add_trades(minute: dict, trades) -> bool:
    """Adds trades (id, time ms, price, amount) to `minute`; a trade id already held is not counted again. Returns
    whether the minute changed."""
    held = minute["trades"]
    changed = False
    for ident, at, price, amount in trades:
        key = str(ident)
        if key not in held:
            held[key] = [at, price, amount]
            changed = True
    return changed


def minute_bar(minute: Mapping, provenance: str = "trades") -> Bar:
    """The 1 m bar of a minute's trades: open/close by (trade time, trade id), high, low, base and quote volume,
    trade count and VWAP."""
    trades = minute["trades"]
    n = len(trades)
    ids = np.fromiter((int(k) for k in trades), dtype=np.int64, count=n)
    rows = np.array(list(trades.values()), dtype=np.float64).reshape(n, 3)
    times, prices, amounts = rows[:, 0].astype(np.int64), rows[:, 1], rows[:, 2]
    order = np.lexsort((ids, times))  # by time, then by id
    first, last = order[0], order[-1]
    base = float(amounts.sum())
    quote = float(np.dot(prices, amounts))
    start = dt.datetime.fromtimestamp(minute["start_s"], UTC)
    return Bar(series=minute["series"], ticker=minute["ticker"], resolution="1m", start=start,
               open=float(prices[first]), high=float(prices.max()), low=float(prices.min()),
               close=float(prices[last]), ticks=n, volume_24h=None, sources=(minute["series"].partition("_")[2],),
               currency=minute["currency"], first_at=ms_time(int(times[first])), last_at=ms_time(int(times[last])),
               volume=base, quote_volume=quote, trades=n, vwap=quote / base if base else None, provenance=provenance,
               first_trade_id=int(ids.min()), last_trade_id=int(ids.max()))


def merge_bars(children: Sequence[Bar], resolution: str) -> Bar:
    """The bar at `resolution` of finer trade bars (its minutes): volumes summed, VWAP of the sums."""
    first = min(children, key=lambda b: b.first_at)
    last = max(children, key=lambda b: b.last_at)
    base = sum(b.volume or 0.0 for b in children)
    quote = sum(b.quote_volume or 0.0 for b in children)
    provenance = "trades" if all(b.provenance == "trades" for b in children) else "exchange-klines"
    return Bar(series=first.series, ticker=first.ticker, resolution=resolution,
               start=bar_start(first.start, resolution), open=first.open, high=max(b.high for b in children),
               low=min(b.low for b in children), close=last.close, ticks=sum(b.ticks for b in children),
               volume_24h=None, sources=tuple(sorted({s for b in children for s in b.sources})),
               currency=last.currency, first_at=first.first_at, last_at=last.last_at, volume=base,
               quote_volume=quote, trades=sum(b.trades or 0 for b in children), vwap=quote / base if base else None,
               provenance=provenance, first_trade_id=_extreme(min, children, "first_trade_id"),
               last_trade_id=_extreme(max, children, "last_trade_id"))


def _extreme(pick, children: Sequence[Bar], name: str):
    values = [getattr(b, name) for b in children if getattr(b, name) is not None]
    return pick(values) if values else None


def parents(start_s: int) -> dict[str, int]:
    """The start (Unix seconds) of the bar holding minute `start_s` at every coarser resolution."""
    return {res: start_s // seconds * seconds for res, seconds in RESOLUTIONS.items() if res != "1m"}


def group_by_minute(items, trade_of=lambda item: item) -> dict[str, list]:
    """Items (each with a Trade found by `trade_of`) by the minute key of their trade, in the order they came."""
    groups: dict[str, list] = {}
    for item in items:
        trade = trade_of(item)
        groups.setdefault(minute_key(trade.series, trade.time_ms // 1000 // MINUTE * MINUTE), []).append(item)
    return groups
