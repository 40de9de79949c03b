"""The exchange stream of the worker that leads: built and started when it becomes the leader, stopped when it no
longer is, so the cluster streams each exchange once."""

from __future__ import annotations

import asyncio
import logging
from typing import Callable, Optional

from cryptoapp.coins import Coin
from cryptoapp.schema import EXCHANGE
from cryptoapp.settings.worker import Settings
from cryptoapp.sources.exchange import ExchangeSource, Publish
from cryptoapp.sources.trade_stream import PublishTrades, TradeFeed

log = logging.getLogger(__name__)

STREAM_STOP_TIMEOUT = 5.0  # seconds the exchange stream may take to close (it needs well under one)


class LeaderStream:
    """Holds the exchange source while this worker leads (`source`, None otherwise); `follow` starts and stops it.

    `coins` is asked for the coins each time a stream starts: a worker resolves them once it started.
    """

    def __init__(self, settings: Settings, coins: Callable[[], tuple[Coin, ...]], publish: Publish,
                 publish_trades: Optional[PublishTrades] = None):
        self.settings = settings
        self.publish_trades = publish_trades
        self.coins = coins
        self.publish = publish
        self.source: Optional[ExchangeSource] = None

    @property
    def on(self) -> bool:
        """Whether the exchange is among CRYPTO_SOURCES."""
        return EXCHANGE in self.settings.sources

    async def follow(self, leading: bool, stopping: bool = False) -> None:
        """Streams while `leading` and the worker is not `stopping`; stops the stream otherwise."""
        if not self.on:
            return
        wanted = leading and not stopping
        if wanted and self.source is None:
            await self._start()
        elif not wanted and self.source is not None:
            await self._stop("the worker stops" if stopping else "this worker no longer leads")

    async def _start(self) -> None:
        s = self.settings
        source = self.source = ExchangeSource(
            s.exchange, self.coins(), self.publish, max_hz=s.exchange_max_hz, stall_s=s.exchange_stall_s,
            ws_url=s.exchange_ws_url, rest_url=s.exchange_rest_url,
            other_sources=(s.polled_source,) if s.polled_source else (),
            trades=TradeFeed(s.exchange, self.publish_trades) if s.trades_on and self.publish_trades else None)
        log.info("this worker leads: streaming %s quotes (at most %g a second per coin)", s.exchange,
                 s.exchange_max_hz)
        try:
            await source.start()
        except Exception:  # a bug: logged once; the instance stays, so it is not retried every second
            log.exception("the %s stream failed to start; the other sources go on", s.exchange)

    async def _stop(self, why: str) -> None:
        source, self.source = self.source, None
        log.info("%s: stopping the stream (%s)", source.exchange_id, why)
        try:
            await asyncio.wait_for(source.stop(), STREAM_STOP_TIMEOUT)
        except Exception as exc:  # a timeout too: stopping must never hold up a rebalance or the worker's stop
            log.warning("%s: the stream did not close cleanly (%r)", source.exchange_id, exc)
