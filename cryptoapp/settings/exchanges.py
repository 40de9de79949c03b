"""Several exchanges at once (CRYPTO_EXCHANGES) and each one's URL overrides for tests and proxies."""

import os
import re
from collections.abc import Mapping
from typing import Optional

from cryptoapp.settings.base import ConfigError


def parse_exchanges(text: str) -> tuple[str, ...]:
    """CRYPTO_EXCHANGES: ccxt ids, comma (or space) separated, lower cased, order kept, repeats dropped. Whether ccxt
    knows each is checked when its stream starts: an unknown one is skipped with one line, the others run."""
    ids = tuple(dict.fromkeys(n.lower() for n in re.split(r"[,\s]+", str(text).strip()) if n))
    if not ids:
        raise ValueError("is empty: name one or more ccxt exchange ids, e.g. binanceus,kraken,coinbaseexchange")
    return ids


def endpoint_overrides(exchange_id: str, first: bool, ws_url: Optional[str], rest_url: Optional[str],
                       environ: Optional[Mapping[str, str]] = None) -> tuple[Optional[str], Optional[str]]:
    """(WebSocket URL, REST URL) for one exchange: CRYPTO_EXCHANGE_WS_URL_<ID> / CRYPTO_EXCHANGE_REST_URL_<ID>
    (the id upper cased, e.g. _KRAKEN), else, for the first (or only) exchange, CRYPTO_EXCHANGE_WS_URL /
    CRYPTO_EXCHANGE_REST_URL; None: ccxt's own endpoints."""
    environ = os.environ if environ is None else environ
    suffix = re.sub(r"[^A-Z0-9]", "_", exchange_id.upper())
    ws = environ.get(f"CRYPTO_EXCHANGE_WS_URL_{suffix}") or (ws_url if first else None)
    rest = environ.get(f"CRYPTO_EXCHANGE_REST_URL_{suffix}") or (rest_url if first else None)
    if ws and not ws.startswith(("ws://", "wss://")):
        raise ConfigError(f"CRYPTO_EXCHANGE_WS_URL_{suffix}={ws!r} is not a WebSocket URL: it starts with ws:// or wss://")
    if rest and not rest.startswith(("http://", "https://")):
        raise ConfigError(f"CRYPTO_EXCHANGE_REST_URL_{suffix}={rest!r} is not an HTTP URL: it starts with http:// "
                          "or https://")
    return ws, rest.rstrip("/") if rest else rest
