"""The forecasters' input: one closed bar of one coin, and the features made from a coin's recent bars."""

from __future__ import annotations

import datetime as dt
import math
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Optional

from cryptoapp.candles.models import Bar as Candle
from cryptoapp.schema import COINGECKO_BACKFILL, TICKER_RE, UTC, is_finite_number

RETURN_LAGS = 5  # the last five 1-bar log returns
MOMENTUM_BARS = (15, 60)  # log returns over the last 15 and 60 bars
VOLUME_BARS = (1, 60)  # change of the 24 h volume over the last bar and the last 60
HISTORY_BARS = max(RETURN_LAGS, *MOMENTUM_BARS, *VOLUME_BARS) + 1
MIN_BARS = RETURN_LAGS + 1  # a forecast needs at least the lagged returns; longer features join when known


class InvalidBar(ValueError):
    """A bar that cannot be forecast from (no positive close, no time zone, a bad ticker); says which."""


@dataclass(frozen=True)
class Bar:
    """A closed bar: `ticker`'s last price `close` in the bar that starts at `start` (UTC), and the 24 h
    volume the source reported with it (None when it gave none)."""

    ticker: str
    start: dt.datetime
    close: float
    volume_24h: Optional[float] = None

    def __post_init__(self) -> None:
        if not isinstance(self.ticker, str) or not TICKER_RE.fullmatch(self.ticker):
            raise InvalidBar(f"bar ticker {self.ticker!r} is not a ticker (1-15 capital letters or digits)")
        if not isinstance(self.start, dt.datetime) or self.start.tzinfo is None:
            raise InvalidBar(f"bar start {self.start!r} of {self.ticker} is not a time with a time zone")
        if not is_finite_number(self.close) or self.close <= 0:
            raise InvalidBar(f"bar close {self.close!r} of {self.ticker} at {self.start} is not a positive number")
        if self.volume_24h is not None and (not is_finite_number(self.volume_24h) or self.volume_24h < 0):
            raise InvalidBar(f"bar volume_24h {self.volume_24h!r} of {self.ticker} is not a number >= 0 or null")
        object.__setattr__(self, "start", self.start.astimezone(UTC))
        object.__setattr__(self, "close", float(self.close))


def bar_from_candle(candle: Candle) -> Bar:
    """The forecasters' bar from a candle (read off crypto-candles with cryptoapp.candles.bars.bar_from_json, or made
    from stored ticks): its ticker, start, close and 24 h volume."""
    return Bar(candle.ticker, candle.start, candle.close, candle.volume_24h)


def learns_from(sources: Iterable[str]) -> bool:
    """Whether a bar made of ticks from `sources` is a minute the forecasters learn from: not when CoinGecko's
    backfilled history alone made it (one point per 5 minutes or per hour: taken for minutes, its 5-minute moves
    would be learned as 1-minute ones). The stream and the backtest both ask this."""
    return any(source != COINGECKO_BACKFILL for source in sources)


def _log_ratio(new: Optional[float], old: Optional[float]) -> Optional[float]:
    if new is None or old is None or new <= 0 or old <= 0:
        return None
    return math.log(new / old)


class History:
    """The last HISTORY_BARS closes and volumes of one coin, oldest first."""

    def __init__(self) -> None:
        self.closes: deque[float] = deque(maxlen=HISTORY_BARS)
        self.volumes: deque[Optional[float]] = deque(maxlen=HISTORY_BARS)

    def __len__(self) -> int:
        return len(self.closes)

    def append(self, bar: Bar) -> None:
        self.closes.append(bar.close)
        self.volumes.append(bar.volume_24h)

    def clear(self) -> None:
        self.closes.clear()
        self.volumes.clear()

    def features(self) -> Optional[dict[str, float]]:
        """Lagged log returns, momentum and volume change as of the newest bar; None before MIN_BARS.

        A feature whose bars are not known yet (or a volume the source did not give) is left out rather
        than set to zero: River's linear models skip a missing feature instead of learning from a made-up one.
        """
        n = len(self.closes)
        if n < MIN_BARS:
            return None
        closes, volumes = self.closes, self.volumes
        x = {f"ret_{lag}": math.log(closes[n - lag] / closes[n - lag - 1]) for lag in range(1, RETURN_LAGS + 1)}
        for bars in MOMENTUM_BARS:
            if n > bars:
                x[f"mom_{bars}"] = math.log(closes[-1] / closes[n - bars - 1])
        for bars in VOLUME_BARS:
            if n > bars:
                change = _log_ratio(volumes[-1], volumes[n - bars - 1])
                if change is not None:
                    x[f"vol_{bars}"] = change
        return x
