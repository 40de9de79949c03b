"""The candles' shared types: a bar and the form the crypto-candles topic carries it in (pure; other stages, such as
the forecasts, read bars through this module)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping
from typing import Optional

from cryptoapp.schema import CANDLE_FIELDS, RESOLUTIONS, SEED_ID_SOURCES, TRADE_BAR_FIELDS, UTC, candle_id, iso_z


@dataclasses.dataclass(frozen=True)
class Bar:
    """One bar of one series: open/high/low/close of the ticks in [start, start + resolution)."""

    series: str
    ticker: str
    resolution: str
    start: dt.datetime
    open: float
    high: float
    low: float
    close: float
    ticks: int
    volume_24h: Optional[float]   # the last tick's rolling 24 h volume (the sources give no per-bar volume)
    sources: tuple[str, ...]      # the sources whose ticks made it, sorted
    currency: str
    first_at: dt.datetime         # the times of the ticks that set open and close
    last_at: dt.datetime
    # Bars made from an exchange's trades (cryptoapp/trades) carry the bar's own volume; ticker-built bars have none.
    volume: Optional[float] = None        # base volume: the coins traded in the bar
    quote_volume: Optional[float] = None  # the same in the quote currency (sum of price x amount)
    trades: Optional[int] = None          # trades counted (each trade id once)
    vwap: Optional[float] = None          # quote_volume / volume
    first_trade_id: Optional[int] = None  # the lowest and highest trade id in it: ids run in sequence per pair on
    last_trade_id: Optional[int] = None   # Binance, so a bar whose ids leave a hole missed trades (a reconnect)
    provenance: str = "ticks"             # what made it: PROVENANCES

    @property
    def trade_built(self) -> bool:
        return self.provenance != "ticks"

    @property
    def id(self) -> str:
        return candle_id(self.series, self.resolution, self.start)

    @property
    def end(self) -> dt.datetime:
        return self.start + dt.timedelta(seconds=RESOLUTIONS[self.resolution])

    @property
    def own_source(self) -> Optional[str]:
        """The source of a series outside CoinGecko's family (an exchange), None for CoinGecko's and the demo's."""
        return next((s for s in self.sources if s not in SEED_ID_SOURCES), None)

    def document(self, updated_at: dt.datetime) -> dict:
        """The stored form in crypto.candles (cryptoapp.schema.CANDLE_FIELDS, plus the series and tick times)."""
        doc = {"_id": self.id, "sensor_id": self.ticker, "resolution": self.resolution, "start": self.start,
               "open": self.open, "high": self.high, "low": self.low, "close": self.close, "ticks": self.ticks,
               "volume_24h": self.volume_24h, "sources": list(self.sources), "currency": self.currency,
               "updated_at": updated_at}
        assert set(doc) == set(CANDLE_FIELDS)
        return {**doc, "series": self.series, "first_at": self.first_at, "last_at": self.last_at,
                "provenance": self.provenance, **({name: getattr(self, name) for name in TRADE_BAR_FIELDS}
                                                  if self.trade_built else {})}

    def same_values(self, doc: Mapping) -> bool:
        """Whether a stored candle document holds exactly this bar (what `verify` compares)."""
        mine = self.document(doc.get("updated_at"))
        # A candle stored before provenance was recorded was made from ticks.
        return all(doc.get(k, "ticks" if k == "provenance" else None) == v for k, v in mine.items() if k != "updated_at")


def ms_time(ms: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ms // 1000, UTC) + dt.timedelta(milliseconds=ms % 1000)


def time_ms(ts: dt.datetime) -> int:
    """A tick time as whole milliseconds since the epoch (what a BSON date keeps)."""
    return int(round(ts.timestamp() * 1000))


# --- on the crypto-candles topic ---------------------------------------------------------------------------------

def bar_to_json(bar: Bar, closed: bool) -> dict:
    """A bar as the crypto-candles topic carries it (times ISO-8601 Z); `closed`: no tick is expected any more."""
    return {"series": bar.series, "ticker": bar.ticker, "resolution": bar.resolution, "start": iso_z(bar.start),
            "open": bar.open, "high": bar.high, "low": bar.low, "close": bar.close, "ticks": bar.ticks,
            "volume_24h": bar.volume_24h, "sources": list(bar.sources), "currency": bar.currency,
            "first_at": iso_z(bar.first_at), "last_at": iso_z(bar.last_at), "closed": closed,
            "provenance": bar.provenance, **{name: getattr(bar, name) for name in TRADE_BAR_FIELDS}}


def bar_from_json(data: Mapping) -> tuple[Bar, bool]:
    def when(text: str) -> dt.datetime:
        return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))

    bar = Bar(series=data["series"], ticker=data["ticker"], resolution=data["resolution"], start=when(data["start"]),
              open=float(data["open"]), high=float(data["high"]), low=float(data["low"]), close=float(data["close"]),
              ticks=int(data["ticks"]), volume_24h=data.get("volume_24h"), sources=tuple(data["sources"]),
              currency=data["currency"], first_at=when(data["first_at"]), last_at=when(data["last_at"]),
              provenance=data.get("provenance", "ticks"), **{name: data.get(name) for name in TRADE_BAR_FIELDS})
    return bar, bool(data.get("closed"))
