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


def _line_names(indicator: str, p: Periods) -> list[tuple[str, str]]:
    """The name and kind of each output of the indicator's TA-Lib function, in TA-Lib's order."""
    if indicator == BOLLINGER:
        label = f"Bollinger {p.bollinger}, {p.bollinger_sd:g}σ"
        return [(f"{label} upper", "line"), (f"{label} middle", "line"), (f"{label} lower", "line")]
    if indicator == MACD:
        label = f"MACD {p.macd_fast}/{p.macd_slow}/{p.macd_signal}"
        return [(label, "line"), (f"{label} signal", "line"), (f"{label} histogram", "bar")]
    period = {SMA: p.sma, EMA: p.ema, RSI: p.rsi}[indicator]
    return [(f"{indicator} {period}", "line")]


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

    lines: list[Line] = []
    for indicator in chosen:
        function, params = _talib_call(indicator, periods)
        outputs = getattr(talib, function)(values, **params)
        outputs = outputs if isinstance(outputs, tuple) else (outputs,)
        panel = indicator if indicator in (RSI, MACD) else PRICE_PANEL
        lines += [Line(indicator, name, panel, aligned(result), kind=kind)
                  for (name, kind), result in zip(_line_names(indicator, periods), outputs)]
    return lines


def too_short(close: pd.Series, chosen: Iterable[str], periods: Periods = Periods()) -> dict[str, int]:
    """The chosen indicators that have no value at all over `close`, with the points each needs."""
    have = int(close.notna().sum())
    return {i: n for i in INDICATORS if i in set(chosen) and have < (n := points_needed(i, periods))}
