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
    """A minute as the table holds it: its bar so far, and the trade ids counted in it as ranges [first, last].

    An exchange numbers a pair's trades in sequence, so a minute's ids are one range or a few: the entry stays a few
    hundred bytes at any rate (a changelog message each time it changes), and a trade id is found in it in O(log n).
    Every part of the bar combines exactly whatever the order: open and close are the least and greatest
    (time, id), high and low extremes, the volumes sums."""
    return {"series": series, "ticker": ticker, "currency": currency, "start_s": start_s, "ids": [], "o": None,
            "c": None, "h": None, "l": None, "v": 0.0, "qv": 0.0, "n": 0}


def _covered(ranges: list, ids: np.ndarray) -> np.ndarray:
    if not ranges:
        return np.zeros(ids.shape, dtype=bool)
    bounds = np.asarray(ranges, dtype=np.int64)
    at = np.searchsorted(bounds[:, 0], ids, side="right") - 1
    return (at >= 0) & (ids <= bounds[np.maximum(at, 0), 1])


def _with_ids(ranges: list, ids: np.ndarray) -> list:
    """`ranges` with the sorted, new `ids` added, adjacent ranges joined."""
    cuts = np.flatnonzero(np.diff(ids) > 1) + 1
    added = [[int(part[0]), int(part[-1])] for part in np.split(ids, cuts)]
    out: list = []
    for low, high in sorted([*ranges, *added]):
        if out and low <= out[-1][1] + 1:
            out[-1][1] = max(out[-1][1], high)
        else:
            out.append([low, high])
    return out


def add_trades(minute: dict, trades) -> bool:
    """Adds trades (id, time ms, price, amount) to `minute`; a trade id already counted (in the minute, or earlier in
    `trades`) is not counted again. Returns whether the minute changed."""
    if not trades:
        return False
    rows = np.asarray(trades, dtype=np.float64)
    ids = np.fromiter((t[0] for t in trades), dtype=np.int64, count=len(trades))
    unique, first = np.unique(ids, return_index=True)
    new = ~_covered(minute["ids"], unique)
    if not new.any():
        return False
    keep = first[new]
    ids, times, prices, amounts = ids[keep], rows[keep, 1].astype(np.int64), rows[keep, 2], rows[keep, 3]
    order = np.lexsort((ids, times))
    o, c = order[0], order[-1]
    opened = [int(times[o]), int(ids[o]), float(prices[o])]
    closed = [int(times[c]), int(ids[c]), float(prices[c])]
    minute["o"] = opened if minute["o"] is None or opened[:2] < minute["o"][:2] else minute["o"]
    minute["c"] = closed if minute["c"] is None or closed[:2] > minute["c"][:2] else minute["c"]
    high, low = float(prices.max()), float(prices.min())
    minute["h"] = high if minute["h"] is None else max(minute["h"], high)
    minute["l"] = low if minute["l"] is None else min(minute["l"], low)
    minute["v"] += float(amounts.sum())
    minute["qv"] += float(np.dot(prices, amounts))
    minute["n"] += int(keep.size)
    minute["ids"] = _with_ids(minute["ids"], np.sort(ids))
    return True


def minute_bar(minute: Mapping, provenance: str = "trades") -> Bar:
    """The 1 m bar of a minute's trades: open/close by (trade time, trade id), high, low, base and quote volume,
    trade count and VWAP."""
    base, quote = minute["v"], minute["qv"]
    start = dt.datetime.fromtimestamp(minute["start_s"], UTC)
    return Bar(series=minute["series"], ticker=minute["ticker"], resolution="1m", start=start, open=minute["o"][2],
               high=minute["h"], low=minute["l"], close=minute["c"][2], ticks=minute["n"], volume_24h=None,
               sources=(minute["series"].partition("_")[2],), currency=minute["currency"],
               first_at=ms_time(minute["o"][0]), last_at=ms_time(minute["c"][0]), volume=base, quote_volume=quote,
               trades=minute["n"], vwap=quote / base if base else None, provenance=provenance,
               first_trade_id=minute["ids"][0][0], last_trade_id=minute["ids"][-1][1])


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
