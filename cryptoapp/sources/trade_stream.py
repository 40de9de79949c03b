"""The exchange's trade stream (ccxt.pro watch_trades_for_symbols) beside its ticker stream: every trade, read from
the message the exchange sent, handed to `publish` in batches; a trade without one of its fields is skipped with
one line (at most one a minute, with the count of the others)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Awaitable, Callable, Optional

from cryptoapp.logs import Throttle
from cryptoapp.trades.models import InvalidTrade, Trade, trade_fields, trade_payload

log = logging.getLogger(__name__)

FLUSH_EVERY_S = 0.2
REPORT_EVERY_S = 60.0
MAX_WAITING = 200_000  # trades held while Kafka does not take them; past it the oldest go (and a line says so)

PublishTrades = Callable[[list[Trade]], Awaitable[None]]


class TradeFeed:
    """The trades of the coins an ExchangeSource streams; it runs as one of the source's tasks (run())."""

    def __init__(self, exchange_id: str, publish: PublishTrades, *, max_backoff_s: float = 30.0):
        self.exchange_id = exchange_id
        self.publish = publish
        self.max_backoff_s = max_backoff_s
        self.by_market_id: dict[str, Any] = {}  # exchange market id (BTCUSD) -> MarketChoice
        self._outbox: list[Trade] = []
        self._reports = Throttle(REPORT_EVERY_S)
        self.published = 0
        self.malformed = 0
        self.reconnects = 0

    def on_message(self, message: Any) -> None:
        """Every message the exchange sent: a trade of ours becomes a Trade in the outbox."""
        payload = trade_payload(message)
        if payload is None:
            return
        choice = self.by_market_id.get(payload.get("s"))
        if choice is None:
            return
        try:
            ident, at, price, amount, side = trade_fields(payload)
        except InvalidTrade as exc:
            self.malformed += 1
            self._report("malformed", f"{self.exchange_id}: skipped a trade of {payload.get('s')} ({exc}): "
                                      f"{str(dict(payload))[:160]}")
            return
        self._outbox.append(Trade(choice.coin.ticker, self.exchange_id, choice.quote.lower(), ident, at, price,
                                  amount, side))

    async def run(self, source) -> None:
        """Waits for the source's markets, then watches the trades of its pairs until the source stops."""
        while not source.plan and not source.should_stop:
            await asyncio.sleep(0.1)
        exchange = source.exchange
        self.by_market_id = {exchange.markets[symbol]["id"]: choice for symbol, choice in source.plan.items()}
        symbols = list(source.plan)
        forward = asyncio.ensure_future(self._forward(source))
        backoff = 0.1
        try:
            while not source.should_stop:
                try:
                    await exchange.watch_trades_for_symbols(symbols)
                    backoff = 0.1
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # a lost connection (NetworkError) or a refusal: dial again, backing off
                    self.reconnects += 1
                    log.warning("%s: trade stream lost (%s); reconnecting in %.1f s", self.exchange_id,
                                str(exc)[:120], backoff)
                    await asyncio.sleep(backoff)
                    backoff = min(self.max_backoff_s, backoff * 2)
        finally:
            forward.cancel()

    async def _forward(self, source) -> None:
        while not source.should_stop:
            await asyncio.sleep(FLUSH_EVERY_S)
            if not self._outbox:
                continue
            trades = self._outbox
            self._outbox = []
            try:
                await self.publish(trades)
                self.published += len(trades)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # kept, in order, for the next try: a trade is never conflated away
                self._outbox = (trades + self._outbox)[-MAX_WAITING:]
                self._report("publish", f"{self.exchange_id}: {len(trades)} trades not published yet "
                                        f"({exc.__class__.__name__}: {str(exc)[:80]}); retrying")

    def _report(self, problem: str, message: str) -> None:
        self._reports.warn(log, problem, message)
