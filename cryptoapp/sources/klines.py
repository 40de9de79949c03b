"""The exchange's own 1 m klines against the trade-built candles (`cryptoapp candles verify --against-exchange`):
every minute the stream saw completely must agree (open, high, low, close equal; volume within rounding); a minute it
missed, or saw with a hole in its trade ids (a reconnect), is named and repaired from the kline (provenance
`exchange-klines`)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from collections.abc import Iterable, Mapping
from typing import Optional

from cryptoapp.candles.models import Bar, ms_time
from cryptoapp.schema import UTC, iso_z

KLINES_PER_CALL = 1000  # Binance's most per /api/v3/klines call


def volume_agrees(ours: float, theirs: float) -> bool:
    """Equal within rounding: Binance gives amounts to 8 decimals, our sum adds float rounding."""
    return math.isclose(ours, theirs, rel_tol=1e-9, abs_tol=1e-8)


@dataclasses.dataclass
class Comparison:
    checked: int = 0
    mismatches: list[str] = dataclasses.field(default_factory=list)
    gaps: list[str] = dataclasses.field(default_factory=list)
    repairs: list[Bar] = dataclasses.field(default_factory=list)


def complete(doc: Mapping) -> bool:
    """Whether a stored minute was seen whole by the trade stream: built from trades, its trade ids without a hole."""
    first, last, trades = doc.get("first_trade_id"), doc.get("last_trade_id"), doc.get("trades")
    return doc.get("provenance") == "trades" and None not in (first, last, trades) and last - first + 1 == trades


def compare(series: str, ticker: str, currency: str, source: str, klines: Iterable[list],
            stored: Mapping[int, Mapping], out: Comparison) -> None:
    """Klines ([open ms, open, high, low, close, volume], ccxt's fetch_ohlcv) against the stored 1 m candles of
    `series` by start (ms), into `out`."""
    for row in klines:
        open_ms, o, h, l, c, v = (int(row[0]), *(float(x) for x in row[1:6]))
        doc = stored.get(open_ms)
        when = f"{series} {iso_z(ms_time(open_ms))}"
        if doc is not None and complete(doc):
            out.checked += 1
            for name, theirs in (("open", o), ("high", h), ("low", l), ("close", c)):
                if doc[name] != theirs:
                    out.mismatches.append(f"{when}: {name} {doc[name]:.10g} here, {theirs:.10g} on {source}")
            if not volume_agrees(doc.get("volume") or 0.0, v):
                out.mismatches.append(f"{when}: volume {doc.get('volume') or 0:.10g} here, {v:.10g} on {source}")
            continue
        if v == 0 and doc is None:
            continue  # no trade in that minute: nothing to compare, nothing missed
        if doc is not None and doc.get("provenance") == "exchange-klines":
            continue  # repaired before
        why = "no trade of it reached the stream" if doc is None else "its trade ids leave a hole (a reconnect)"
        out.gaps.append(f"{when}: {why}; repaired from {source}'s kline")
        start = ms_time(open_ms)
        out.repairs.append(Bar(series=series, ticker=ticker, resolution="1m", start=start, open=o, high=h, low=l,
                               close=c, ticks=0, volume_24h=None, sources=(source,), currency=currency,
                               first_at=start, last_at=start, volume=v, provenance="exchange-klines"))


async def fetch_klines(exchange, symbol: str, since_ms: int, until_ms: int) -> list[list]:
    """The 1 m klines of `symbol` opening in [since_ms, until_ms), paged KLINES_PER_CALL at a time."""
    rows: list[list] = []
    at = since_ms
    while at < until_ms:
        page = await exchange.fetch_ohlcv(symbol, "1m", since=at, limit=KLINES_PER_CALL)
        page = [row for row in page if at <= row[0] < until_ms]
        if not page:
            break
        rows += page
        at = int(page[-1][0]) + 60_000
    return rows


async def against_exchange(store, exchange_id: str, coins, *, hours: float, grace_s: float,
                           rest_url: Optional[str] = None) -> Comparison:
    """Every listed coin's trade-built 1 m candles of the last `hours` against the exchange's klines; the gaps'
    repairs are stored (crypto.candles) before this returns."""
    import ccxt.async_support as ccxt_rest

    from cryptoapp.sources.markets import choose_markets
    from cryptoapp.schema import series_id

    exchange = getattr(ccxt_rest, exchange_id)({"enableRateLimit": True})
    if rest_url:
        exchange.urls["api"]["public"] = rest_url
    out = Comparison()
    now = dt.datetime.now(UTC).timestamp()
    until_ms = int((now - grace_s) // 60 * 60 * 1000)  # minutes closed for good
    since_ms = int((now - hours * 3600) // 60 * 60 * 1000)
    try:
        chosen, _ = choose_markets(await exchange.load_markets(), coins)
        for choice in chosen:
            series = series_id(choice.coin.ticker, exchange_id)
            stored = {int(doc["start"].replace(tzinfo=UTC).timestamp() * 1000): doc
                      async for doc in store.candles.stored_candles(ms_time(since_ms), ms_time(until_ms), [series])
                      if doc["resolution"] == "1m"}
            klines = await fetch_klines(exchange, choice.symbol, since_ms, until_ms)
            compare(series, choice.coin.ticker, choice.quote.lower(), exchange_id, klines, stored, out)
    finally:
        await exchange.close()
    if out.repairs:
        await store.candles.store_candles(out.repairs)
    return out
