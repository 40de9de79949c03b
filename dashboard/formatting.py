"""How the dashboard writes prices, volumes, changes and ages; a missing number is always "—"."""

from __future__ import annotations

import datetime as dt
import math

MISSING = "—"


def _is_missing(x: float | None) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def _in(number: str, currency: str | None) -> str:
    """$87.00 in US dollars; 87.00 USDT in anything else (a stablecoin is not the dollar: it is named)."""
    if currency is None or currency.lower() == "usd":
        return f"-${number[1:]}" if number.startswith("-") else f"${number}"
    return f"{number} {currency.upper()}"


def price(x: float | None, currency: str | None = "usd") -> str:
    """$87,123.45 for large prices, $1.0002 for stablecoins, $0.000012 for tiny ones; 87,123.45 USDT in a quote
    currency other than the dollar."""
    if _is_missing(x):
        return MISSING
    if abs(x) >= 1000:
        return _in(f"{x:,.2f}", currency)
    if abs(x) >= 1:
        return _in(f"{x:,.4f}", currency)
    return _in(f"{x:.6g}", currency)


def money(x: float | None, currency: str | None = "usd") -> str:
    """$31.26 B, $950.3 M, $12.5 K: large sums (volume, market cap) at a glance; 1.50 B USDT in another currency."""
    if _is_missing(x):
        return MISSING
    for size, unit in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K")):
        if abs(x) >= size:
            return _in(f"{x / size:,.2f} {unit}", currency)
    return _in(f"{x:,.2f}", currency)


def spread(x: float | None, bps: float | None, currency: str | None = "usd") -> str:
    """The bid/ask spread, absolute and in basis points of the mid price: $5.71 (0.65 bps)."""
    if _is_missing(x):
        return MISSING
    absolute = _in(f"{x:,.6g}", currency)
    return absolute if _is_missing(bps) else f"{absolute} ({bps:,.2f} bps)"


def change(pct: float | None) -> str:
    """Markdown for a 24 h change: green ▲ when up, red ▼ when down, plain when flat or missing."""
    if _is_missing(pct):
        return MISSING
    if pct > 0:
        return f":green[**▲ +{pct:.2f} %**]"
    if pct < 0:
        return f":red[**▼ −{abs(pct):.2f} %**]"
    return "**0.00 %**"


def age(then: dt.datetime, now: dt.datetime) -> str:
    """12 s ago, 5 min ago, 3 h ago, 2 d ago."""
    seconds = max(0.0, (now - then).total_seconds())
    if seconds < 120:
        return f"{seconds:.0f} s ago"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.0f} min ago"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.0f} h ago"
    return f"{seconds / 86400:.0f} d ago"


def duration(seconds: float) -> str:
    """5 s, 5 min, 2 h: a bucket or interval length."""
    if seconds < 120:
        return f"{seconds:g} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.3g} min"
    return f"{seconds / 3600:.3g} h"
