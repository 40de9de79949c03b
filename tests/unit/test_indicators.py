"""The history chart's indicators: TA-Lib's values, aligned to the series, in a fixed order, with their warm-up."""

import numpy as np
import pandas as pd
import pytest
import talib

from dashboard import indicators
from dashboard.indicators import BOLLINGER, EMA, INDICATORS, MACD, RSI, SMA, Periods


def prices(n=120, seed=3):
    rng = np.random.default_rng(seed)
    return pd.Series(87000 * np.exp(np.cumsum(rng.normal(0, 0.002, n))), index=range(100, 100 + n))


def by_name(lines):
    return {line.name: line for line in lines}


def test_sma_is_the_rolling_mean_and_ema_is_talibs():
    close = prices()
    lines = by_name(indicators.compute(close, [SMA, EMA], Periods(sma=10, ema=12)))
    sma, ema = lines["SMA 10"].values, lines["EMA 12"].values
    pd.testing.assert_series_equal(sma, close.rolling(10).mean(), check_names=False)
    assert ema.index.equals(close.index) and ema.iloc[:11].isna().all()
    np.testing.assert_allclose(ema.to_numpy(), talib.EMA(close.to_numpy(), timeperiod=12), equal_nan=True)


def test_bollinger_bands_are_the_sma_plus_and_minus_k_population_deviations():
    close = prices()
    lines = by_name(indicators.compute(close, [BOLLINGER], Periods(bollinger=20, bollinger_sd=2.5)))
    upper, middle, lower = (lines[f"Bollinger 20, 2.5σ {part}"].values for part in ("upper", "middle", "lower"))
    std = close.rolling(20).std(ddof=0)
    np.testing.assert_allclose(middle, close.rolling(20).mean(), equal_nan=True)
    np.testing.assert_allclose(upper - middle, 2.5 * std, rtol=1e-7, equal_nan=True)
    np.testing.assert_allclose(middle - lower, 2.5 * std, rtol=1e-7, equal_nan=True)
    assert {line.panel for line in lines.values()} == {indicators.PRICE_PANEL}


def test_rsi_and_macd_are_talibs_in_panels_of_their_own():
    close = prices()
    lines = by_name(indicators.compute(close, [RSI, MACD]))
    rsi = lines["RSI 14"]
    assert rsi.panel == RSI and rsi.values.iloc[:14].isna().all()
    assert rsi.values.dropna().between(0, 100).all()
    np.testing.assert_allclose(rsi.values, talib.RSI(close.to_numpy(), timeperiod=14), equal_nan=True)
    macd, signal, hist = (lines[n].values for n in ("MACD 12/26/9", "MACD 12/26/9 signal", "MACD 12/26/9 histogram"))
    assert {lines[n].panel for n in lines if n.startswith("MACD")} == {MACD}
    assert lines["MACD 12/26/9 histogram"].kind == "bar"
    np.testing.assert_allclose((macd - signal).dropna(), hist.dropna(), atol=1e-9)
    np.testing.assert_allclose(macd, talib.MACD(close.to_numpy())[0], equal_nan=True)
    # MACD is the fast EMA minus the slow one (TA-Lib seeds the fast EMA later: equal once the seed has faded)
    fast, slow = talib.EMA(close.to_numpy(), 12), talib.EMA(close.to_numpy(), 26)
    np.testing.assert_allclose(macd.iloc[-20:], (fast - slow)[-20:], rtol=1e-3)


def test_lines_come_in_a_fixed_order_whatever_was_ticked_first():
    names = [line.indicator for line in indicators.compute(prices(), [MACD, SMA, RSI, BOLLINGER, EMA])]
    assert list(dict.fromkeys(names)) == list(INDICATORS)


def test_missing_prices_are_skipped_and_stay_missing():
    close = prices(40)
    holey = close.copy()
    holey.iloc[[5, 17]] = np.nan
    sma = indicators.compute(holey, [SMA], Periods(sma=5))[0].values
    assert sma.index.equals(holey.index) and sma.iloc[[5, 17]].isna().all()
    expected = holey.dropna().rolling(5).mean()
    np.testing.assert_allclose(sma.dropna(), expected.dropna())


def test_too_short_a_series_names_what_each_indicator_needs():
    assert indicators.points_needed(SMA) == 20 and indicators.points_needed(RSI) == 15
    assert indicators.points_needed(MACD) == 34  # 26 for the slow EMA, 9 for the signal: 25 + 8 + 1
    short = prices(18)
    assert indicators.too_short(short, [SMA, RSI, MACD]) == {SMA: 20, MACD: 34}
    assert indicators.compute(short, [SMA])[0].values.isna().all()


@pytest.mark.parametrize("periods", [dict(sma=1), dict(rsi=0), dict(macd_fast=26, macd_slow=12),
                                     dict(bollinger_sd=0)])
def test_unusable_periods_are_refused(periods):
    with pytest.raises(ValueError):
        Periods(**periods)


def test_an_unknown_indicator_is_refused():
    with pytest.raises(ValueError, match="unknown indicators"):
        indicators.compute(prices(), ["VWAP"])
