"""The exchange source: an exchange's public WebSocket ticker stream (ccxt) as PriceTicks with real bid and ask."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import logging
import time
from typing import Any, Awaitable, Callable, Optional

from mode import Service
from tenacity import AsyncRetrying, retry_if_exception_type, wait_exponential_jitter

from cryptoapp.coins import Coin
from cryptoapp.logs import Throttle
from cryptoapp.metrics import EXCHANGE_TICKS
from cryptoapp.prices.models import UTC, PriceTick
from cryptoapp.settings import DEFAULT_MAX_HZ, DEFAULT_STALL_S
from cryptoapp.sources import SourceHealth
from cryptoapp.sources.ccxt_stream import KEEPALIVE_S, ExchangeConfigError, close_exchange, network_error, open_exchange
from cryptoapp.sources.markets import (DEFAULT_QUOTES, Conflator, InvalidQuote, MarketChoice, choose_markets, plan_lines,
                                       tick_from_ticker)

log = logging.getLogger(__name__)

MAX_CONNECTION_S = 23.5 * 3600  # Binance closes a connection after 24 h: rotate before, at a time of our choosing
FLUSH_EVERY_S = 0.2
REPORT_EVERY_S = 60.0  # repeated problems (malformed messages, failed publishes) are summed up this often

Publish = Callable[[list[PriceTick]], Awaitable[None]]


def _short(value: Any, limit: int = 120) -> str:
    text = value.decode(errors="replace") if isinstance(value, bytes) else str(value)
    return text if len(text) <= limit else text[:limit] + "..."


class _SessionEnded(Exception):
    """A connection that had delivered quotes ended: reconnect at once, with the backoff reset."""


@dataclasses.dataclass
class Link:
    """The state of the connection: what the watchdog watches, and what the lines of a drop, a stall and a
    recovery say (times are monotonic seconds)."""

    last_message: float = 0.0  # the last message on the current connection
    session_start: Optional[float] = None  # while a connection is being read
    session_quotes: int = 0  # quotes taken on the current connection
    lost_at: Optional[float] = None  # when the connection was lost, until quotes come again
    lost_reason: str = ""
    stalled_since: Optional[float] = None  # the last message before a stall, until quotes come again
    renewing: bool = False  # the watchdog ended the connection before the 24-hour limit


class ExchangeSource(Service):
    """Streams one exchange's tickers for the coins it lists and hands conflated PriceTicks to `publish`.

    Start it on the leader only: it holds one WebSocket connection per process (a second source for the
    same endpoint refuses to start). It reconnects on a drop, on missed pongs (ccxt's keepAlive) and
    before the 24-hour limit; a stream silent for `stall_s` seconds is logged and redialled.
    """

    def __init__(self, exchange_id: str, coins: tuple[Coin, ...], publish: Publish, *,
                 max_hz: float = DEFAULT_MAX_HZ, stall_s: float = DEFAULT_STALL_S,
                 ws_url: Optional[str] = None, rest_url: Optional[str] = None,
                 quotes: tuple[str, ...] = DEFAULT_QUOTES, keepalive_s: float = KEEPALIVE_S,
                 max_connection_s: float = MAX_CONNECTION_S, max_backoff_s: float = 30.0,
                 other_sources: tuple[str, ...] = ("the other sources",), trades=None,
                 setting: str = "CRYPTO_EXCHANGE", **kwargs):
        super().__init__(**kwargs)
        self.trades = trades  # a TradeFeed (sources/trade_stream.py) when CRYPTO_TRADES is on
        self.name = exchange_id
        self.setting = setting  # the setting that named the exchange, for the line when ccxt cannot stream it
        self.other_sources = other_sources  # where the coins it does not list come from, for its start-up line
        self.exchange_id = exchange_id
        self.coins = coins
        self.publish = publish
        self.max_hz = max_hz
        self.stall_s = stall_s
        self.ws_url = ws_url
        self.rest_url = rest_url
        self.quotes = quotes
        self.keepalive_s = keepalive_s
        self.max_connection_s = max_connection_s
        self.max_backoff_s = max_backoff_s
        self.conflator = Conflator(max_hz)
        self.plan: dict[str, MarketChoice] = {}  # ccxt symbol -> the coin it prices
        self.left_out: dict[str, str] = {}
        self.exchange = None
        self.link = Link()
        self._outbox: list[PriceTick] = []
        self._wake = asyncio.Event()
        self._seen: dict[str, Any] = {}  # symbol -> the last ticker dict taken from ccxt's cache
        self._reports = Throttle(REPORT_EVERY_S)  # repeated problems: one line each per REPORT_EVERY_S
        # What happened, for tests and metrics.
        self.published = 0
        self.health = SourceHealth()
        self.malformed = 0
        self.stalls = 0
        self.reconnects = 0
        self.gaps: list[float] = []  # seconds from a lost connection to the first quote on the next one

    # --- life cycle ----------------------------------------------------------------------------------
    async def on_start(self) -> None:
        try:
            self.exchange = await open_exchange(self.exchange_id, self, ws_url=self.ws_url, rest_url=self.rest_url,
                                                keepalive_s=self.keepalive_s, setting=self.setting)
        except ExchangeConfigError as exc:
            log.error("%s; the %s stream stays off, the other sources go on", exc, self.exchange_id)
            return
        self.add_future(self._stream())
        self.add_future(self._forward())
        self.add_future(self._watchdog())
        if self.trades is not None:
            self.add_future(self.trades.run(self))

    async def on_shutdown(self) -> None:
        # After mode cancelled the tasks above: nothing waits on the exchange any more.
        if self.exchange is not None:
            await close_exchange(self.exchange)
            self.exchange = None

    # --- hooks called by the exchange for every message -----------------------------------------------
    def on_message(self, message: Any) -> None:
        self.link.last_message = time.monotonic()
        if self.trades is not None:
            self.trades.on_message(message)
        if isinstance(message, dict) and "error" in message:
            self._report("error", f"{self.exchange_id} answered an error: {_short(message)}")

    def on_malformed(self, message: Any, exc: Exception) -> None:
        self.malformed += 1
        self._report("malformed", f"{self.exchange_id}: skipped a malformed message ({exc.__class__.__name__}: "
                                  f"{_short(exc, 80)}): {_short(message)}")

    def on_handled(self) -> None:
        """Takes every ticker of ours that ccxt's cache holds anew (one message may carry several)."""
        tickers = self.exchange.tickers if self.exchange is not None else {}
        received = None
        for symbol, choice in self.plan.items():
            ticker = tickers.get(symbol)
            # ccxt stores a new dict per update: the same object is an update already taken.
            if ticker is None or self._seen.get(symbol) is ticker:
                continue
            self._seen[symbol] = ticker
            received = received or dt.datetime.now(UTC)
            try:
                tick = tick_from_ticker(ticker, choice, self.exchange_id, received)
            except InvalidQuote as exc:
                self.on_malformed(ticker.get("info", ticker), exc)
                continue
            self._quotes_again()
            ready = self.conflator.add(choice.coin.ticker, int(tick.timestamp.timestamp() * 1000), tick)
            if ready:
                self._outbox += ready
                self._wake.set()

    def _quotes_again(self) -> None:
        """A quote came: a lost connection or a stall, if there was one, is over (and said so once)."""
        link = self.link
        if link.lost_at is not None:
            gap = time.monotonic() - link.lost_at
            self.gaps.append(gap)
            if link.stalled_since is None:
                log.info("%s: streaming again, %.1f s after the connection was lost (%s)", self.exchange_id,
                         gap, link.lost_reason)
            link.lost_at = None
        if link.stalled_since is not None:
            log.warning("%s: quotes again after %.1f s without", self.exchange_id,
                        time.monotonic() - link.stalled_since)
            link.stalled_since = None
        link.session_quotes += 1

    # --- tasks ---------------------------------------------------------------------------------------
    async def _stream(self) -> None:
        await self._load_markets()
        if not self.plan:
            return
        lost = network_error()
        while not self.should_stop:
            async for attempt in AsyncRetrying(
                retry=retry_if_exception_type(Exception),
                wait=wait_exponential_jitter(multiplier=0.5, max=self.max_backoff_s, jitter=0.5),
                before_sleep=lambda state: log.log(
                    logging.DEBUG if self.link.stalled_since is not None else logging.WARNING,  # the stall's line says it
                    "%s: cannot stream (%s); retry %d in %.1f s", self.exchange_id,
                    _short(state.outcome.exception()), state.attempt_number, state.upcoming_sleep),
            ):
                with attempt:
                    try:
                        await self._session(lost)
                    except _SessionEnded:
                        pass  # it had worked: leave the retry loop so the next one starts without backoff

    async def _session(self, lost: type) -> None:
        """One connection: subscribe and keep it read until it fails."""
        link = self.link
        started = link.session_start = link.last_message = time.monotonic()
        link.session_quotes = 0
        symbols = list(self.plan)
        try:
            while not self.should_stop:
                # The return value is only the next update; on_handled has taken every update already.
                await self.exchange.watch_tickers(symbols)
        except lost as exc:
            self.reconnects += 1
            if link.lost_at is None:
                link.lost_at = time.monotonic()
                link.lost_reason = _short(exc)
                self.health.failed(f"connection lost ({link.lost_reason}); reconnecting")
            if link.session_quotes:
                if link.stalled_since is None and not link.renewing:  # those two logged their own line
                    log.warning("%s: connection lost after %.0f s (%s); reconnecting", self.exchange_id,
                                time.monotonic() - started, _short(exc))
                link.renewing = False
                raise _SessionEnded() from None
            raise
        finally:
            link.session_start = None

    async def _load_markets(self) -> None:
        """The exchange's markets (one REST call on Binance US), retried until they come; then the plan."""
        async for attempt in AsyncRetrying(
            retry=retry_if_exception_type(Exception), wait=wait_exponential_jitter(max=300),
            before_sleep=lambda state: log.warning(
                "%s: markets could not be loaded (%s); retry %d in %.0f s (check CRYPTO_EXCHANGE and the network)",
                self.exchange_id, _short(state.outcome.exception()), state.attempt_number, state.upcoming_sleep),
        ):
            with attempt:
                markets = await self.exchange.load_markets()
        chosen, self.left_out = choose_markets(markets, self.coins, self.quotes)
        self.plan = {c.symbol: c for c in chosen}
        streaming, unlisted = plan_lines(self.exchange_id, chosen, self.left_out, self.other_sources)
        if streaming:
            log.info("%s", streaming)
        if unlisted:
            log.warning("%s", unlisted)

    async def _forward(self) -> None:
        """Hands finished slots to `publish`: at once when a later quote closed them, else after the grace."""
        while not self.should_stop:
            try:
                await asyncio.wait_for(self._wake.wait(), FLUSH_EVERY_S)
            except asyncio.TimeoutError:
                pass
            self._wake.clear()
            ticks, self._outbox = self._outbox + self.conflator.due(time.time() * 1000), []
            if not ticks:
                continue
            try:
                await self.publish(ticks)
                self.published += len(ticks)
                self.health.ok()
                EXCHANGE_TICKS.labels(self.exchange_id).inc(len(ticks))
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the next slot brings a fresher quote; a stale one is not worth a queue
                self._report("publish", f"{self.exchange_id}: {len(ticks)} ticks not published "
                                        f"({exc.__class__.__name__}: {_short(exc, 80)})")

    async def _watchdog(self) -> None:
        """Stall detection and the connection's age limit: both end the connection, and _stream redials."""
        lost = network_error()
        link = self.link
        while not self.should_stop:
            await asyncio.sleep(min(1.0, self.stall_s / 4))
            if link.session_start is None or self.exchange is None:
                continue
            now = time.monotonic()
            reason = None
            if now - link.last_message > self.stall_s:
                self.stalls += 1
                if link.stalled_since is None:
                    link.stalled_since = link.last_message
                    self.health.failed(f"no message for {now - link.last_message:.0f} s (stalled); reconnecting")
                    log.warning("%s: no message for %.0f s (stalled stream); reconnecting", self.exchange_id,
                                now - link.last_message)
                reason = f"no message for {self.stall_s:g} s"
            elif now - link.session_start > self.max_connection_s:
                link.renewing = True
                log.info("%s: renewing the connection after %.0f s, before the exchange's 24-hour limit",
                         self.exchange_id, now - link.session_start)
                reason = "renewed before the 24-hour limit"
            if reason is not None:
                link.session_start = None
                for client in list(self.exchange.clients.values()):
                    client.on_error(lost(reason))

    def _report(self, problem: str, message: str) -> None:
        """One log line per problem per REPORT_EVERY_S; the line says how many more there were meanwhile."""
        self._reports.warn(log, problem, message)
