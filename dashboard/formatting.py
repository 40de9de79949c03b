"""How the dashboard writes prices, volumes, changes and ages; a missing number is always "—"."""

from __future__ import annotations

import datetime as dt
import math

MISSING = "—"


def _is_missing(x: float | None) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def price(x: float | None) -> str:
    """$87,123.45 for large prices, $1.0002 for stablecoins, $0.000012 for tiny ones."""
    if _is_missing(x):
        return MISSING
    if abs(x) >= 1000:
        return f"${x:,.2f}"
    if abs(x) >= 1:
        return f"${x:,.4f}"
    return f"${x:.6g}"


def money(x: float | None) -> str:
    """$31.26 B, $950.3 M, $12.5 K: large sums (volume, market cap) at a glance."""
    if _is_missing(x):
        return MISSING
    for size, unit in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K")):
        if abs(x) >= size:
            return f"${x / size:,.2f} {unit}"
    return f"${x:,.2f}"


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
