"""Technical indicators of a price series (SMA, EMA, Bollinger bands, RSI, MACD), computed by TA-Lib, never by hand.

Pure (no streamlit): the history tab asks for the indicators a user ticked, the figure builder draws the lines
this returns, and the CSV export writes them. TA-Lib (the `ta-lib` wrapper of the C library every trading tool
uses) returns NaN for the first points of each line, where its lookback is not filled yet; those stay NaN.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

import numpy as np
import pandas as pd
import talib
from talib import abstract

SMA, EMA, BOLLINGER, RSI, MACD = "SMA", "EMA", "Bollinger bands", "RSI", "MACD"
INDICATORS = (SMA, EMA, BOLLINGER, RSI, MACD)
# SMA, EMA and the Bollinger bands share the price's panel; RSI and MACD have scales of their own: each gets a panel
# below the price, named after it.
PRICE_PANEL = "price"
RSI_BANDS = (30.0, 70.0)  # the conventional oversold / overbought lines


@dataclasses.dataclass(frozen=True)
class Periods:
    """Each indicator's parameters, in points of the series (bars, or ticks when drawn from ticks)."""

    sma: int = 20
    ema: int = 50
    bollinger: int = 20
    bollinger_sd: float = 2.0
    rsi: int = 14
    macd_fast: int = 12
    macd_slow: int = 26
    macd_signal: int = 9

    def __post_init__(self):
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if not value > (0 if field.name == "bollinger_sd" else 1):
                raise ValueError(f"{field.name} = {value!r}: an indicator period is a whole number of at least 2")
        if self.macd_fast >= self.macd_slow:
            raise ValueError(f"MACD's fast period ({self.macd_fast}) must be shorter than its slow one "
                             f"({self.macd_slow})")


@dataclasses.dataclass(frozen=True)
class Line:
    """One drawn line of an indicator: its name (legend, CSV column), panel and values aligned to the series."""

    indicator: str
    name: str
    panel: str
    values: pd.Series
    kind: str = "line"  # "line", or "bar" (the MACD histogram)


def points_needed(indicator: str, periods: Periods = Periods()) -> int:
    """How many points the indicator needs before its first value (TA-Lib's lookback, plus the point itself)."""
    name, params = _talib_call(indicator, periods)
    function = abstract.Function(name)
    function.set_parameters(params)
    return function.lookback + 1


def _talib_call(indicator: str, p: Periods) -> tuple[str, dict]:
    return {
        SMA: ("SMA", {"timeperiod": p.sma}),
        EMA: ("EMA", {"timeperiod": p.ema}),
        BOLLINGER: ("BBANDS", {"timeperiod": p.bollinger, "nbdevup": p.bollinger_sd, "nbdevdn": p.bollinger_sd}),
        RSI: ("RSI", {"timeperiod": p.rsi}),
        MACD: ("MACD", {"fastperiod": p.macd_fast, "slowperiod": p.macd_slow, "signalperiod": p.macd_signal}),
    }[indicator]


def compute(close: pd.Series, chosen: Iterable[str], periods: Periods = Periods()) -> list[Line]:
    """The lines of the `chosen` indicators over `close` (a price per point, oldest first), aligned to its index.

    Points without a price (NaN) are left out of the computation and get NaN lines.
    """
    wanted = set(chosen)
    unknown = wanted - set(INDICATORS)
    if unknown:
        raise ValueError(f"unknown indicators {sorted(unknown)}: choose from {', '.join(INDICATORS)}")
    chosen = [i for i in INDICATORS if i in wanted]  # a fixed order, whatever the user ticked first
    known = close.dropna().astype("float64")
    values = known.to_numpy(dtype=np.float64)

    def aligned(result: np.ndarray) -> pd.Series:
        return pd.Series(result, index=known.index, dtype="float64").reindex(close.index)

    p = periods
    lines: list[Line] = []
    for indicator in chosen:
        if indicator == SMA:
            lines.append(Line(SMA, f"SMA {p.sma}", PRICE_PANEL, aligned(talib.SMA(values, timeperiod=p.sma))))
        elif indicator == EMA:
            lines.append(Line(EMA, f"EMA {p.ema}", PRICE_PANEL, aligned(talib.EMA(values, timeperiod=p.ema))))
        elif indicator == BOLLINGER:
            upper, middle, lower = talib.BBANDS(values, timeperiod=p.bollinger, nbdevup=p.bollinger_sd,
                                                nbdevdn=p.bollinger_sd)
            label = f"Bollinger {p.bollinger}, {p.bollinger_sd:g}σ"
            lines += [Line(BOLLINGER, f"{label} upper", PRICE_PANEL, aligned(upper)),
                      Line(BOLLINGER, f"{label} middle", PRICE_PANEL, aligned(middle)),
                      Line(BOLLINGER, f"{label} lower", PRICE_PANEL, aligned(lower))]
        elif indicator == RSI:
            lines.append(Line(RSI, f"RSI {p.rsi}", RSI, aligned(talib.RSI(values, timeperiod=p.rsi))))
        elif indicator == MACD:
            macd, signal, histogram = talib.MACD(values, fastperiod=p.macd_fast, slowperiod=p.macd_slow,
                                                 signalperiod=p.macd_signal)
            label = f"MACD {p.macd_fast}/{p.macd_slow}/{p.macd_signal}"
            lines += [Line(MACD, label, MACD, aligned(macd)),
                      Line(MACD, f"{label} signal", MACD, aligned(signal)),
                      Line(MACD, f"{label} histogram", MACD, aligned(histogram), kind="bar")]
    return lines


def too_short(close: pd.Series, chosen: Iterable[str], periods: Periods = Periods()) -> dict[str, int]:
    """The chosen indicators that have no value at all over `close`, with the points each needs."""
    have = int(close.notna().sum())
    return {i: n for i in INDICATORS if i in set(chosen) and have < (n := points_needed(i, periods))}
