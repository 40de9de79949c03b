"""ccxt.pro's exchanges, made to hand every WebSocket message to a listener and opened once per endpoint and process."""

from __future__ import annotations

import logging
from typing import Any, Optional, Protocol

from cryptoapp.settings import DEFAULT_EXCHANGE, ConfigError

log = logging.getLogger(__name__)

KEEPALIVE_S = 20.0  # ccxt's Binance default is 180 s, so a dead link could stay silent ~6 min (ccxt issue 22412)

# One process streams a given exchange endpoint once: the endpoints of the open exchanges.
_RUNNING: set[tuple[str, str]] = set()


class ExchangeConfigError(ConfigError):
    """CRYPTO_EXCHANGE names no exchange ccxt can stream tickers from; the message names the fix."""


class AlreadyStreaming(RuntimeError):
    """A second source for the same exchange endpoint in one process (only the leader runs one)."""


class Listener(Protocol):
    """What the exchange tells of every message it receives (cryptoapp.sources.exchange.ExchangeSource)."""

    def on_message(self, message: Any) -> None: ...

    def on_malformed(self, message: Any, exc: Exception) -> None: ...

    def on_handled(self) -> None: ...


def exchange_class(exchange_id: str, setting: str = "CRYPTO_EXCHANGE") -> type:
    """ccxt.pro's class for `exchange_id`, made to report every message to its `listener`.

    Imports ccxt.pro (about 3 s the first time, 0.4 s with compiled bytecode), so call it only when the
    source is on.
    """
    import ccxt.pro

    base = getattr(ccxt.pro, exchange_id, None) if exchange_id in ccxt.pro.exchanges else None
    if base is None:
        raise ExchangeConfigError(f"{setting}={exchange_id!r} is not an exchange ccxt streams: use a ccxt id "
                                  f"such as {DEFAULT_EXCHANGE}, kraken or coinbaseexchange")
    if not base().has.get("watchTickers"):
        raise ExchangeConfigError(f"{setting}={exchange_id!r}: ccxt cannot watch its tickers over WebSocket; "
                                  f"choose another exchange, e.g. {DEFAULT_EXCHANGE}")

    class ListenedExchange(base):
        """Every decoded message goes to `listener` too: a `watch_*` call returns only the next update and
        the ones in between land in `self.tickers` unseen (shared/reference/exchanges.md)."""

        listener: Optional[Listener] = None

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


async def open_exchange(exchange_id: str, listener: Listener, *, ws_url: Optional[str] = None,
                        rest_url: Optional[str] = None, keepalive_s: float = KEEPALIVE_S,
                        setting: str = "CRYPTO_EXCHANGE"):
    """A listened exchange for `exchange_id` with our keepalive, the full @ticker stream and, where given, the
    WebSocket and REST URLs of a local server. Raises ExchangeConfigError for an exchange ccxt cannot stream,
    and AlreadyStreaming when this process has that endpoint open already (close_exchange releases it)."""
    cls = exchange_class(exchange_id, setting)
    config: dict[str, Any] = {"enableRateLimit": True, "streaming": {"keepAlive": int(keepalive_s * 1000)}}
    exchange = cls(config)
    if rest_url:
        exchange.urls["api"]["public"] = rest_url
    if ws_url:
        ws = exchange.urls["api"].get("ws")
        if isinstance(ws, dict):  # Binance: one URL per market type
            ws["spot"] = ws_url
        else:
            exchange.urls["api"]["ws"] = ws_url
    markets = exchange.options.get("fetchMarkets")
    if isinstance(markets, dict) and "spot" in markets.get("types", ()):
        # Binance: the spot markets alone (one REST call), all we stream; no margin call (it needs a key).
        markets["types"] = ["spot"]
        exchange.options["fetchMargins"] = False
    ws_options = exchange.options.get("watchTickers")
    if isinstance(ws_options, dict) and "name" in ws_options:
        # Binance's default is miniTicker, which has no bid or ask; the full @ticker has both and `E`.
        ws_options["name"] = "ticker"
    key = (exchange_id, str(exchange.urls["api"].get("ws")))
    if key in _RUNNING:
        await exchange.close()
        raise AlreadyStreaming(f"{exchange_id} is already streamed by this process; start the exchange "
                               "source once, on the leader")
    _RUNNING.add(key)
    exchange.streamed_endpoint = key
    exchange.listener = listener
    return exchange


async def close_exchange(exchange) -> None:
    """Closes an exchange open_exchange opened (once nothing waits on it any more) and releases its endpoint."""
    exchange.listener = None
    try:
        await exchange.close()
    except Exception as exc:  # closing a dead socket may fail; nothing is left to save
        log.debug("%s: close failed: %r", exchange.id, exc)
    _RUNNING.discard(exchange.streamed_endpoint)


def network_error() -> type:
    """ccxt's NetworkError: what a lost connection raises, and what ends one on purpose."""
    import ccxt

    return ccxt.NetworkError
