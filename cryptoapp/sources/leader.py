"""The exchange stream of the worker that leads: built and started when it becomes the leader, stopped when it no
longer is, so the cluster streams each exchange once."""

from __future__ import annotations

import asyncio
import logging
from typing import Callable, Optional

from cryptoapp.coins import Coin
from cryptoapp.schema import EXCHANGE
from cryptoapp.settings import ConfigError
from cryptoapp.settings.exchanges import endpoint_overrides
from cryptoapp.settings.worker import Settings
from cryptoapp.sources.exchange import ExchangeSource, Publish
from cryptoapp.sources.trade_stream import PublishTrades, TradeFeed

log = logging.getLogger(__name__)

STREAM_STOP_TIMEOUT = 5.0  # seconds the exchange stream may take to close (it needs well under one)


class LeaderStream:
    """Holds the exchange sources while this worker leads (`sources`, one per exchange of CRYPTO_EXCHANGES, empty
    otherwise; `source` is the first); `follow` starts and stops them.

    `coins` is asked for the coins each time a stream starts: a worker resolves them once it started.
    """

    def __init__(self, settings: Settings, coins: Callable[[], tuple[Coin, ...]], publish: Publish,
                 publish_trades: Optional[PublishTrades] = None):
        self.settings = settings
        self.publish_trades = publish_trades
        self.coins = coins
        self.publish = publish
        self.sources: list[ExchangeSource] = []

    @property
    def source(self) -> Optional[ExchangeSource]:
        """The first exchange's source while this worker leads, else None."""
        return self.sources[0] if self.sources else None

    @property
    def on(self) -> bool:
        """Whether the exchange is among CRYPTO_SOURCES."""
        return EXCHANGE in self.settings.sources

    async def follow(self, leading: bool, stopping: bool = False) -> None:
        """Streams while `leading` and the worker is not `stopping`; stops the stream otherwise."""
        if not self.on:
            return
        wanted = leading and not stopping
        if wanted and not self.sources:
            await self._start()
        elif not wanted and self.sources:
            why = "the worker stops" if stopping else "this worker no longer leads"
            sources, self.sources = self.sources, []
            for source in sources:
                await self._stop(source, why)

    async def _start(self) -> None:
        s = self.settings
        log.info("this worker leads: streaming %s quotes (at most %g a second per coin and exchange)",
                 ", ".join(s.exchanges), s.exchange_max_hz)
        coins = self.coins()
        for index, exchange_id in enumerate(s.exchanges):
            try:
                ws_url, rest_url = endpoint_overrides(exchange_id, index == 0, s.exchange_ws_url, s.exchange_rest_url)
            except ConfigError as exc:
                log.error("%s; the %s stream stays off, the other sources go on", exc, exchange_id)
                continue
            others = tuple(x for x in (s.polled_source, *s.exchanges) if x and x != exchange_id)
            source = ExchangeSource(exchange_id, coins, self.publish, max_hz=s.exchange_max_hz,
                                    stall_s=s.exchange_stall_s, ws_url=ws_url, rest_url=rest_url, other_sources=others,
                                    setting="CRYPTO_EXCHANGES" if s.exchanges_named else "CRYPTO_EXCHANGE",
                                    trades=self._trade_feed(exchange_id))
            self.sources.append(source)
            try:
                await source.start()
            except Exception:  # a bug: logged once; the instance stays, so it is not retried every second
                log.exception("the %s stream failed to start; the other sources go on", exchange_id)

    def _trade_feed(self, exchange_id: str) -> Optional[TradeFeed]:
        """The exchange's trade stream, where CRYPTO_TRADES is on and its trade messages can be read."""
        s = self.settings
        if not (s.trades_on and self.publish_trades):
            return None
        if exchange_id not in s.trade_exchanges:
            log.info("%s: no trade stream (only Binance's trade messages are read so far); its candles come from its "
                     "ticker", exchange_id)
            return None
        return TradeFeed(exchange_id, self.publish_trades)

    async def _stop(self, source: ExchangeSource, why: str) -> None:
        log.info("%s: stopping the stream (%s)", source.exchange_id, why)
        try:
            await asyncio.wait_for(source.stop(), STREAM_STOP_TIMEOUT)
        except Exception as exc:  # a timeout too: stopping must never hold up a rebalance or the worker's stop
            log.warning("%s: the stream did not close cleanly (%r)", source.exchange_id, exc)
