"""Which candles the forecasting agent takes: closed minutes of CoinGecko's series, and no other bar."""

from __future__ import annotations

import json

from cryptoapp.candles.bars import Minute, merge
from cryptoapp.candles.models import bar_to_json
from cryptoapp.forecasts.stage import closed_minute
from cryptoapp.schema import COINGECKO, COINGECKO_BACKFILL, SIMULATED

START = 1_764_000_000 // 60 * 60


def candle(series: str = "BTC", source: str = COINGECKO, closed: bool = True, resolution: str = "1m",
           separators=None) -> dict:
    minute = Minute(series, "BTC", START, "usd")
    minute.absorb(START * 1000 + 5_000, 87_000.0, 1e9, source)
    bar = minute.bar() if resolution == "1m" else merge([minute.bar()], resolution)
    return json.loads(json.dumps(bar_to_json(bar, closed), separators=separators))


def test_only_closed_minutes_of_coingeckos_series_are_taken():
    assert closed_minute(candle()).close == 87_000.0
    assert closed_minute(candle(source=SIMULATED)) is not None  # the demo stands in for CoinGecko
    assert closed_minute(candle(closed=False)) is None  # still open: it may change
    assert closed_minute(candle(resolution="5m")) is None
    assert closed_minute(candle(series="BTC_binanceus", source="binanceus")) is None  # an exchange's series
    assert closed_minute(candle(source=COINGECKO_BACKFILL)) is None  # 5-minute history is not a minute


def test_the_relays_quick_check_passes_every_closed_minute_however_its_json_is_spaced():
    for separators in (None, (",", ":")):
        raw = json.dumps(candle(separators=separators), separators=separators).encode()
        assert b'"1m"' in raw and b"true" in raw  # relay_minutes parses only messages holding both
