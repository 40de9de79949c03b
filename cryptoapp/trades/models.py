"""A trade as the crypto-trades topic carries it, and Binance's `<symbol>@trade` message read into one (pure).

Every field is taken from the message the exchange sent (ccxt's `info`), never from ccxt's rebuilt values: a
message without its id `t`, time `T`, price `p`, amount `q` or side `m` is no trade (InvalidTrade, skipped).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import Any

from cryptoapp.schema import is_finite_number, series_id

TRADE_FIELDS = ("t", "T", "p", "q", "m")  # Binance's trade id, trade time (ms), price, quantity, buyer-is-maker


class InvalidTrade(ValueError):
    """A trade message without one of its fields, or with one that is not what Binance documents."""


@dataclasses.dataclass(frozen=True)
class Trade:
    ticker: str
    source: str       # the exchange id, e.g. binanceus
    currency: str     # the pair's quote currency, lower case
    id: int           # the exchange's trade id: the key of the idempotence
    time_ms: int      # the exchange's trade time
    price: float
    amount: float     # in the coin
    side: str         # the taker's side: "buy" or "sell"

    @property
    def series(self) -> str:
        return series_id(self.ticker, self.source)

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def encode(self) -> bytes:
        return json.dumps(self.to_json(), separators=(",", ":")).encode()


def trade_payload(message: Any) -> Mapping | None:
    """The trade event of a message (raw, or inside a combined stream's {"stream", "data"}), None if it is none."""
    if isinstance(message, Mapping) and isinstance(message.get("data"), Mapping) and "stream" in message:
        message = message["data"]
    return message if isinstance(message, Mapping) and message.get("e") == "trade" else None


def _decimal(value: Any, name: str) -> float:
    try:
        number = float(value) if isinstance(value, str) else None
    except ValueError:
        number = None
    if number is None or not is_finite_number(number) or number <= 0:
        raise InvalidTrade(f"{name}={value!r} is not a positive decimal string")
    return number


def trade_fields(payload: Mapping) -> tuple[int, int, float, float, str]:
    """(id, time in ms, price, amount, side) of a Binance trade event; raises InvalidTrade naming what is wrong."""
    missing = [name for name in TRADE_FIELDS if name not in payload]
    if missing:
        raise InvalidTrade(f"no {', '.join(missing)} in the trade")
    ident, at, maker = payload["t"], payload["T"], payload["m"]
    for name, value in (("t", ident), ("T", at)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise InvalidTrade(f"{name}={value!r} is not a whole number")
    if not isinstance(maker, bool):
        raise InvalidTrade(f"m={maker!r} is not true or false")
    # m: the buyer made the market, so the taker sold.
    return ident, at, _decimal(payload["p"], "p"), _decimal(payload["q"], "q"), "sell" if maker else "buy"


def decode_trade(data: bytes | str | Mapping) -> Trade:
    """A crypto-trades message back into a Trade; raises InvalidTrade for anything else."""
    try:
        raw = json.loads(data) if isinstance(data, (bytes, str)) else data
        trade = Trade(ticker=str(raw["ticker"]), source=str(raw["source"]), currency=str(raw["currency"]),
                      id=int(raw["id"]), time_ms=int(raw["time_ms"]), price=float(raw["price"]),
                      amount=float(raw["amount"]), side=str(raw["side"]))
    except (ValueError, KeyError, TypeError) as exc:
        raise InvalidTrade(f"not a trade ({exc.__class__.__name__}: {exc})") from None
    if not (trade.price > 0 and trade.amount > 0):
        raise InvalidTrade("price and amount must be positive")
    return trade
