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
    return MISSING if _is_missing(x) else _in(amount(x), currency)


def amount(x: float) -> str:
    """87,123.45 · 1.0002 · 0.000012: a price's digits, as many as its size needs (a measured value, not typed)."""
    if abs(x) >= 1000:
        return f"{x:,.2f}"
    if abs(x) >= 1:
        return f"{x:,.4f}"
    return f"{x:.6g}"


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


_UNIT_SECONDS = {"s": 1, "min": 60, "h": 3600, "d": 86400}


def _scaled(seconds: float, units: tuple[str, ...]) -> tuple[float, str]:
    """`seconds` in the first of `units` whose next unit it does not hold twice yet (119 s, then 2 min), and that unit."""
    for unit, bigger in zip(units, units[1:]):
        if seconds < 2 * _UNIT_SECONDS[bigger]:
            return seconds / _UNIT_SECONDS[unit], unit
    return seconds / _UNIT_SECONDS[units[-1]], units[-1]


def age(then: dt.datetime, now: dt.datetime) -> str:
    """12 s ago, 5 min ago, 3 h ago, 2 d ago."""
    value, unit = _scaled(max(0.0, (now - then).total_seconds()), ("s", "min", "h", "d"))
    return f"{value:.0f} {unit} ago"


def duration(seconds: float) -> str:
    """5 s, 5 min, 2 h: a bucket or interval length."""
    value, unit = _scaled(seconds, ("s", "min", "h"))
    return f"{value:g} s" if unit == "s" else f"{value:.3g} {unit}"


def number(x: float | None) -> str:
    """200,000 · 1,985.5 · -3: a threshold or an observed value as the rules write it (up to 10 digits)."""
    return MISSING if _is_missing(x) else f"{x:,.10g}"


def percent(x: float | None, signed: bool = False) -> str:
    """25.00 %, or +10.00 % / -2.50 % when `signed`: a ratio of 0.25 shown as a percentage."""
    if _is_missing(x):
        return MISSING
    return f"{x * 100:+.2f} %" if signed else f"{x * 100:.2f} %"


def utc_time(t, seconds: bool = True) -> str:
    """2025-11-21 10:00:05 (UTC, the page says so once in the header, not +00:00 in every cell); — when missing."""
    if t is None or t != t:  # None, NaN, NaT
        return MISSING
    if t.tzinfo is not None:
        t = t.astimezone(dt.timezone.utc)
    return t.strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")


def text(x) -> str:
    """A text cell: blank for nothing (an error that did not happen is not "None")."""
    return "" if x is None or (isinstance(x, float) and math.isnan(x)) else str(x)
