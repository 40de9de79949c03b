"""The exchange source: an exchange's public WebSocket ticker stream (ccxt) as PriceTicks with real bid and ask."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import logging
import math
import time
from typing import Any, Awaitable, Callable, Iterable, Mapping, Optional

from mode import Service
from tenacity import AsyncRetrying, retry_if_exception_type, wait_exponential_jitter

from cryptoapp.coins import Coin
from cryptoapp.prices.models import UTC, PriceTick
from cryptoapp.settings import DEFAULT_EXCHANGE, DEFAULT_MAX_HZ, DEFAULT_STALL_S, ConfigError

log = logging.getLogger(__name__)

DEFAULT_QUOTES = ("USD", "USDT")  # preference order; the quote is kept on the tick, never converted
KEEPALIVE_S = 20.0  # ccxt's Binance default is 180 s, so a dead link could stay silent ~6 min (ccxt issue 22412)
MAX_CONNECTION_S = 23.5 * 3600  # Binance closes a connection after 24 h: rotate before, at a time of our choosing
SLOT_GRACE_S = 0.5  # a slot's last quote is published this long after the slot ended, if no later quote came
FLUSH_EVERY_S = 0.2
REPORT_EVERY_S = 60.0  # repeated problems (malformed messages, failed publishes) are summed up this often

Publish = Callable[[list[PriceTick]], Awaitable[None]]

# One process streams a given exchange endpoint once: the keys of the running sources.
_RUNNING: set[tuple[str, str]] = set()


class InvalidQuote(ValueError):
    """A ticker that cannot become a PriceTick; the message says why."""


class ExchangeConfigError(ConfigError):
    """CRYPTO_EXCHANGE names no exchange ccxt can stream tickers from; the message names the fix."""


class AlreadyStreaming(RuntimeError):
    """A second source for the same exchange endpoint in one process (only the leader runs one)."""


# --- pure parts: market choice, ticker -> PriceTick, conflation --------------------------------------
@dataclasses.dataclass(frozen=True)
class MarketChoice:
    coin: Coin
    symbol: str  # ccxt's unified symbol, e.g. "BTC/USD"
    quote: str  # the quote currency, e.g. "USD"; the tick's `currency` is its lower case
    note: Optional[str] = None  # why this pair and not a preferred one (e.g. "ETH/USD is halted")


def choose_markets(markets: Mapping[str, Mapping[str, Any]], coins: Iterable[Coin],
                   quotes: tuple[str, ...] = DEFAULT_QUOTES) -> tuple[list[MarketChoice], dict[str, str]]:
    """For each coin the spot pair to stream, and for each coin left out (by ticker) the reason.

    A coin gets its pair against the first of `quotes` whose market is active; a halted pair is passed over
    for the next quote. A coin is never quoted in itself (USDT/USDT is no price of USDT): a stablecoin
    without a pair against another quote is left to the other sources.
    """
    by_base: dict[str, dict[str, Mapping[str, Any]]] = {}
    for market in markets.values():
        if market.get("spot") and market.get("base") and market.get("quote"):
            by_base.setdefault(str(market["base"]).upper(), {})[str(market["quote"]).upper()] = market
    chosen: list[MarketChoice] = []
    left_out: dict[str, str] = {}
    for coin in coins:
        pairs = by_base.get(coin.ticker.upper(), {})
        halted: list[str] = []
        for quote in quotes:
            market = pairs.get(quote.upper())
            if market is None or quote.upper() == coin.ticker.upper():
                continue
            if market.get("active") is False:
                halted.append(str(market["symbol"]))
                continue
            note = f"{', '.join(halted)} halted" if halted else None
            chosen.append(MarketChoice(coin, str(market["symbol"]), quote.upper(), note))
            break
        else:
            wanted = "/".join(q for q in quotes if q.upper() != coin.ticker.upper())
            left_out[coin.ticker] = (f"{', '.join(halted)} halted" if halted
                                     else f"no {coin.ticker} pair against {wanted}")
    return chosen, left_out


def _finite(value: Any) -> Optional[float]:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def _positive(value: Any) -> Optional[float]:
    number = _finite(value)
    return number if number is not None and number > 0 else None


def event_time_ms(ticker: Mapping[str, Any]) -> int:
    """The exchange's own time of the update in ms: Binance's event time `E` where the raw message has it
    (ccxt's `timestamp` for @ticker is the statistics close time `C`), else ccxt's `timestamp`."""
    info = ticker.get("info")
    raw = info.get("E") if isinstance(info, Mapping) else None
    for value in (raw, ticker.get("timestamp")):
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    raise InvalidQuote(f"no event time (timestamp {ticker.get('timestamp')!r})")


def tick_from_ticker(ticker: Mapping[str, Any], choice: MarketChoice, source: str,
                     received_at: dt.datetime) -> PriceTick:
    """A PriceTick from one ccxt ticker dict of `choice`'s market; raises InvalidQuote naming the problem.

    value = last trade price, timestamp = the exchange's event time (ms kept), bid/ask and their sizes as
    given (a side without a positive price is null, its size too), volume_24h = the 24 h volume in the quote
    currency (Binance's `q`; the base volume `v` counts coins, not money), change_24h_pct as the exchange
    gives it, market_cap null (an exchange has none).
    """
    last = _positive(ticker.get("last"))
    if last is None:
        raise InvalidQuote(f"{choice.symbol}: last price {ticker.get('last')!r} is not a positive number")
    ts = dt.datetime.fromtimestamp(event_time_ms(ticker) / 1000, UTC)
    bid, ask = _positive(ticker.get("bid")), _positive(ticker.get("ask"))
    bid_size = _finite(ticker.get("bidVolume")) if bid is not None else None
    ask_size = _finite(ticker.get("askVolume")) if ask is not None else None
    volume = _finite(ticker.get("quoteVolume"))
    return PriceTick(
        ticker=choice.coin.ticker, timestamp=ts, value=last, source=source, currency=choice.quote.lower(),
        bid_price=bid, ask_price=ask, bid_size=bid_size if bid_size is None or bid_size >= 0 else None,
        ask_size=ask_size if ask_size is None or ask_size >= 0 else None,
        volume_24h=volume if volume is None or volume >= 0 else None,
        change_24h_pct=_finite(ticker.get("percentage")), market_cap=None, fetched_at=received_at,
    )


class Conflator:
    """At most `max_hz` ticks a second per key: the event-time axis is cut into slots of 1/max_hz s, and
    of each slot only the last quote (by event time) goes on.

    A slot is done when a quote of a later slot arrives, or `grace_s` after it ended (`due`). A quote
    for a slot already sent is late and dropped, so a slot is never sent twice.
    """

    def __init__(self, max_hz: float, grace_s: float = SLOT_GRACE_S):
        if not max_hz > 0:
            raise ValueError(f"max_hz must be positive, not {max_hz!r}")
        self.slot_ms = 1000.0 / max_hz
        self.grace_ms = grace_s * 1000
        self._pending: dict[str, tuple[int, int, Any]] = {}  # key -> (slot, event ms, item)
        self._sent_slot: dict[str, int] = {}
        self.late = 0
        self.replaced = 0

    def add(self, key: str, event_ms: int, item: Any) -> list[Any]:
        """Take one quote; returns the items whose slot this quote closed (0 or 1)."""
        slot = int(event_ms // self.slot_ms)
        if slot <= self._sent_slot.get(key, -1):
            self.late += 1
            return []
        pending = self._pending.get(key)
        if pending is not None and pending[0] == slot:
            if event_ms >= pending[1]:
                self._pending[key] = (slot, event_ms, item)
            self.replaced += 1
            return []
        self._pending[key] = (slot, event_ms, item)
        if pending is None:
            return []
        self._sent_slot[key] = pending[0]
        return [pending[2]]

    def due(self, now_ms: float) -> list[Any]:
        """The pending items whose slot ended more than the grace time before `now_ms`."""
        out = []
        for key, (slot, _, item) in list(self._pending.items()):
            if (slot + 1) * self.slot_ms + self.grace_ms <= now_ms:
                del self._pending[key]
                self._sent_slot[key] = slot
                out.append(item)
        return out


# --- ccxt --------------------------------------------------------------------------------------------
def exchange_class(exchange_id: str) -> type:
    """ccxt.pro's class for `exchange_id`, made to report every message to its `listener`.

    Imports ccxt.pro (about 3 s the first time, 0.4 s with compiled bytecode), so call it only when the
    source is on.
    """
    import ccxt.pro

    base = getattr(ccxt.pro, exchange_id, None) if exchange_id in ccxt.pro.exchanges else None
    if base is None:
        raise ExchangeConfigError(f"CRYPTO_EXCHANGE={exchange_id!r} is not an exchange ccxt streams: use a ccxt id "
                                  f"such as {DEFAULT_EXCHANGE}, kraken or coinbaseexchange")
    if not base().has.get("watchTickers"):
        raise ExchangeConfigError(f"CRYPTO_EXCHANGE={exchange_id!r}: ccxt cannot watch its tickers over WebSocket; "
                                  f"choose another exchange, e.g. {DEFAULT_EXCHANGE}")

    class ListenedExchange(base):
        """Every decoded message goes to `listener` too: a `watch_*` call returns only the next update and
        the ones in between land in `self.tickers` unseen (shared/reference/exchanges.md)."""

        listener: Optional["ExchangeSource"] = None

        def handle_message(self, client, message):
            listener = self.listener
            if listener is None:
                return super().handle_message(client, message)
            listener.on_message(message)
            try:
                super().handle_message(client, message)
            except Exception as exc:  # ccxt raises on a message it cannot parse; the stream goes on
                listener.on_malformed(message, exc)
                return
            listener.on_handled()

        def client(self, url):
            client = super().client(url)
            if not getattr(client, "guarded_by_cryptoapp", False):
                decode = client.handle_text_or_binary_message

                def guarded(data):
                    # ccxt decodes a frame inside its receive loop's callback: a frame that is not JSON
                    # raises there and ends the loop for good, leaving the socket open and unread.
                    try:
                        decode(data)
                    except Exception as exc:
                        if self.listener is None:
                            raise
                        self.listener.on_malformed(data, exc)

                client.handle_text_or_binary_message = guarded
                client.guarded_by_cryptoapp = True
            return client

    ListenedExchange.__name__ = f"Listened{base.__name__}"
    return ListenedExchange


def _network_error() -> type:
    import ccxt

    return ccxt.NetworkError


def _short(value: Any, limit: int = 120) -> str:
    text = value.decode(errors="replace") if isinstance(value, bytes) else str(value)
    return text if len(text) <= limit else text[:limit] + "..."


class _SessionEnded(Exception):
    """A connection that had delivered quotes ended: reconnect at once, with the backoff reset."""


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
                 other_sources: tuple[str, ...] = ("the other sources",), **kwargs):
        super().__init__(**kwargs)
        self.name = exchange_id
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
        self._key: Optional[tuple[str, str]] = None
        self._outbox: list[PriceTick] = []
        self._wake = asyncio.Event()
        self._seen: dict[str, Any] = {}  # symbol -> the last ticker dict taken from ccxt's cache
        self._last_message = 0.0  # monotonic time of the last message on the current connection
        self._session_start: Optional[float] = None
        self._session_quotes = 0
        self._lost_at: Optional[float] = None
        self._lost_reason = ""
        self._stalled_since: Optional[float] = None
        self._renewing = False
        self._reports: dict[str, tuple[float, int]] = {}  # problem -> (last logged, occurrences since)
        # What happened, for tests and metrics.
        self.published = 0
        self.malformed = 0
        self.stalls = 0
        self.reconnects = 0
        self.gaps: list[float] = []  # seconds from a lost connection to the first quote on the next one

    # --- life cycle ----------------------------------------------------------------------------------
    async def on_start(self) -> None:
        try:
            cls = exchange_class(self.exchange_id)
        except ExchangeConfigError as exc:
            log.error("%s; the exchange source stays off", exc)
            return
        config: dict[str, Any] = {"enableRateLimit": True, "streaming": {"keepAlive": int(self.keepalive_s * 1000)}}
        exchange = cls(config)
        if self.rest_url:
            exchange.urls["api"]["public"] = self.rest_url
        if self.ws_url:
            ws = exchange.urls["api"].get("ws")
            if isinstance(ws, dict):  # Binance: one URL per market type
                ws["spot"] = self.ws_url
            else:
                exchange.urls["api"]["ws"] = self.ws_url
        ws_options = exchange.options.get("watchTickers")
        if isinstance(ws_options, dict) and "name" in ws_options:
            # Binance's default is miniTicker, which has no bid or ask; the full @ticker has both and `E`.
            ws_options["name"] = "ticker"
        key = (self.exchange_id, str(exchange.urls["api"].get("ws")))
        if key in _RUNNING:
            await exchange.close()
            raise AlreadyStreaming(f"{self.exchange_id} is already streamed by this process; start the exchange "
                                   "source once, on the leader")
        _RUNNING.add(key)
        self._key = key
        exchange.listener = self
        self.exchange = exchange
        self.add_future(self._stream())
        self.add_future(self._forward())
        self.add_future(self._watchdog())

    async def on_shutdown(self) -> None:
        # After mode cancelled the tasks above: nothing waits on the exchange any more.
        if self.exchange is not None:
            self.exchange.listener = None
            try:
                await self.exchange.close()
            except Exception as exc:  # closing a dead socket may fail; nothing is left to save
                log.debug("%s: close failed: %r", self.exchange_id, exc)
            self.exchange = None
        if self._key is not None:
            _RUNNING.discard(self._key)
            self._key = None

    # --- hooks called by the exchange for every message -----------------------------------------------
    def on_message(self, message: Any) -> None:
        self._last_message = time.monotonic()
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
            if self._lost_at is not None:
                gap = time.monotonic() - self._lost_at
                self.gaps.append(gap)
                if self._stalled_since is None:
                    log.info("%s: streaming again, %.1f s after the connection was lost (%s)", self.exchange_id,
                             gap, self._lost_reason)
                self._lost_at = None
            if self._stalled_since is not None:
                log.warning("%s: quotes again after %.1f s without", self.exchange_id,
                            time.monotonic() - self._stalled_since)
                self._stalled_since = None
            self._session_quotes += 1
            ready = self.conflator.add(choice.coin.ticker, int(tick.timestamp.timestamp() * 1000), tick)
            if ready:
                self._outbox += ready
                self._wake.set()

    # --- tasks ---------------------------------------------------------------------------------------
    async def _stream(self) -> None:
        await self._load_markets()
        if not self.plan:
            return
        network_error = _network_error()
        while not self.should_stop:
            async for attempt in AsyncRetrying(
                retry=retry_if_exception_type(Exception),
                wait=wait_exponential_jitter(multiplier=0.5, max=self.max_backoff_s, jitter=0.5),
                before_sleep=lambda state: log.log(
                    logging.DEBUG if self._stalled_since is not None else logging.WARNING,  # the stall's line says it
                    "%s: cannot stream (%s); retry %d in %.1f s", self.exchange_id,
                    _short(state.outcome.exception()), state.attempt_number, state.upcoming_sleep),
            ):
                with attempt:
                    try:
                        await self._session(network_error)
                    except _SessionEnded:
                        pass  # it had worked: leave the retry loop so the next one starts without backoff

    async def _session(self, network_error: type) -> None:
        """One connection: subscribe and keep it read until it fails."""
        started = self._session_start = self._last_message = time.monotonic()
        self._session_quotes = 0
        symbols = list(self.plan)
        try:
            while not self.should_stop:
                # The return value is only the next update; on_handled has taken every update already.
                await self.exchange.watch_tickers(symbols)
        except network_error as exc:
            self.reconnects += 1
            if self._lost_at is None:
                self._lost_at = time.monotonic()
                self._lost_reason = _short(exc)
            if self._session_quotes:
                if self._stalled_since is None and not self._renewing:  # those two logged their own line
                    log.warning("%s: connection lost after %.0f s (%s); reconnecting", self.exchange_id,
                                time.monotonic() - started, _short(exc))
                self._renewing = False
                raise _SessionEnded() from None
            raise
        finally:
            self._session_start = None

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
        if self.plan:
            log.info("%s: streaming %s", self.exchange_id, ", ".join(
                f"{c.coin.ticker} from {c.symbol}" + (f" ({c.note})" if c.note else "") for c in chosen))
        if self.left_out:
            one = len(self.left_out) == 1
            log.warning("%s does not list %s; %s", self.exchange_id,
                        "; ".join(f"{t} ({reason})" for t, reason in self.left_out.items()),
                        f"{'it comes' if one else 'they come'} from {' and '.join(self.other_sources)} only"
                        if self.other_sources else
                        f"{'it has' if one else 'they have'} no price (no other source is on in CRYPTO_SOURCES)")

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
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the next slot brings a fresher quote; a stale one is not worth a queue
                self._report("publish", f"{self.exchange_id}: {len(ticks)} ticks not published "
                                        f"({exc.__class__.__name__}: {_short(exc, 80)})")

    async def _watchdog(self) -> None:
        """Stall detection and the connection's age limit: both end the connection, and _stream redials."""
        network_error = _network_error()
        while not self.should_stop:
            await asyncio.sleep(min(1.0, self.stall_s / 4))
            if self._session_start is None or self.exchange is None:
                continue
            now = time.monotonic()
            reason = None
            if now - self._last_message > self.stall_s:
                self.stalls += 1
                if self._stalled_since is None:
                    self._stalled_since = self._last_message
                    log.warning("%s: no message for %.0f s (stalled stream); reconnecting", self.exchange_id,
                                now - self._last_message)
                reason = f"no message for {self.stall_s:g} s"
            elif now - self._session_start > self.max_connection_s:
                self._renewing = True
                log.info("%s: renewing the connection after %.0f s, before the exchange's 24-hour limit",
                         self.exchange_id, now - self._session_start)
                reason = "renewed before the 24-hour limit"
            if reason is not None:
                self._session_start = None
                for client in list(self.exchange.clients.values()):
                    client.on_error(network_error(reason))

    def _report(self, problem: str, message: str) -> None:
        """One log line per problem per REPORT_EVERY_S; the line says how many more there were meanwhile."""
        now = time.monotonic()
        last, count = self._reports.get(problem, (-math.inf, 0))
        if now - last >= REPORT_EVERY_S:
            more = f" ({count} more like it in the last {now - last:.0f} s)" if count else ""
            log.warning("%s%s", message, more)
            self._reports[problem] = (now, 0)
        else:
            self._reports[problem] = (last, count + 1)
