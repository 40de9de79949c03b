"""The PriceTick record that travels on the crypto-prices topic, and the parser of its messages."""

from __future__ import annotations

import datetime as dt
import functools
import json
from typing import Any, Optional

import faust

from cryptoapp.schema import OPTIONAL_TICK_NUMBERS, TICKER_RE, UTC, is_finite_number, iso_z, series_id, tick_id


class InvalidTick(ValueError):
    """A message on the prices topic that is not a usable PriceTick; the message says why."""


class PriceTick(faust.Record, isodates=True, serializer="json", include_metadata=False):
    """One observed price of one coin, as the source reported it (None where the source gives nothing)."""

    ticker: str
    timestamp: dt.datetime          # when the source observed the price (UTC)
    value: float
    source: str
    currency: str = "usd"
    bid_price: Optional[float] = None
    ask_price: Optional[float] = None
    volume_24h: Optional[float] = None
    change_24h_pct: Optional[float] = None
    market_cap: Optional[float] = None
    granularity: Optional[str] = None  # set on backfilled ticks: the spacing of the source's points
    fetched_at: Optional[dt.datetime] = None  # when this worker received it (latency measurements)
    # Quantities at the best bid and ask, in the coin (base currency), where the source gives them.
    bid_size: Optional[float] = None
    ask_size: Optional[float] = None

    # Worked out once per tick (the sink asks for both several times a batch); a tick is never changed after it is
    # made, so the cached value cannot go stale.
    @functools.cached_property
    def tick_id(self) -> str:
        return tick_id(self.ticker, self.timestamp, self.source)

    @functools.cached_property
    def series(self) -> str:
        """The series this tick belongs to (schema.series_id): BTC for CoinGecko, BTC_binanceus for an exchange."""
        return series_id(self.ticker, self.source)

    def is_newer_than(self, other: Optional["PriceTick"]) -> bool:
        """The newest-wins rule of latest_prices: an older tick never replaces a newer one."""
        return other is None or self.timestamp >= other.timestamp

    def same_observation(self, other: Optional["PriceTick"]) -> bool:
        """`other` reports exactly this observation (when each was fetched aside): storing it again adds nothing."""
        return other is not None and {**self.to_json(), "fetched_at": None} == {**other.to_json(), "fetched_at": None}

    def to_json(self) -> dict[str, Any]:
        """The tick as the web views and the Kafka topic carry it (ISO-8601 Z timestamps)."""
        out = {field: getattr(self, field) for field in self._options.fields}
        for field in ("timestamp", "fetched_at"):
            if out[field] is not None:
                out[field] = iso_z(out[field])
        return out

    def encode(self) -> bytes:
        return json.dumps(self.to_json(), allow_nan=False).encode()


def _number(data: dict, field: str, required: bool) -> Optional[float]:
    value = data.get(field)
    if value is None and not required:
        return None
    if not is_finite_number(value):
        raise InvalidTick(f"field {field!r} is {value!r}, not a finite number")
    return float(value)


def _timestamp(data: dict, field: str, required: bool) -> Optional[dt.datetime]:
    value = data.get(field)
    if value is None and not required:
        return None
    try:
        ts = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise InvalidTick(f"field {field!r} is {value!r}, not an ISO-8601 time") from None
    if ts.tzinfo is None:
        raise InvalidTick(f"field {field!r} is {value!r}, which has no time zone")
    return ts.astimezone(UTC)


def decode_tick(raw: Optional[bytes]) -> PriceTick:
    """Parse and check one message value; raises InvalidTick naming what is wrong."""
    if raw is None:
        raise InvalidTick("empty message")
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidTick(f"not JSON ({exc.__class__.__name__}: {exc})") from None
    return tick_from_json(data)


def tick_from_json(data: Any) -> PriceTick:
    """A tick from its parsed JSON (PriceTick.to_json's form); raises InvalidTick naming what is wrong."""
    if not isinstance(data, dict):
        raise InvalidTick(f"JSON {type(data).__name__}, not an object")
    ticker = data.get("ticker")
    if not isinstance(ticker, str) or not TICKER_RE.fullmatch(ticker):
        raise InvalidTick(f"missing or malformed ticker {ticker!r}")
    value = _number(data, "value", required=True)
    if value <= 0:
        raise InvalidTick(f"price {value!r} of {ticker} is not positive")
    source = data.get("source")
    if not isinstance(source, str) or not source:
        raise InvalidTick("missing source")
    return PriceTick(
        ticker=ticker,
        timestamp=_timestamp(data, "timestamp", required=True),
        value=value,
        source=source,
        currency=str(data.get("currency") or "usd"),
        granularity=data.get("granularity"),
        fetched_at=_timestamp(data, "fetched_at", required=False),
        **{field: _number(data, field, required=False) for field in OPTIONAL_TICK_NUMBERS},
    )

