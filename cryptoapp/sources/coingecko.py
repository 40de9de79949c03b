"""CoinGecko: the HTTP client and the live source (/simple/price, one call per poll for all coins); its answers are
read in coingecko_answers.py."""

from __future__ import annotations

import asyncio
import datetime as dt
import email.utils
import json
import logging
import random
import time
from typing import Any, Mapping, Optional

import aiohttp
from mode import Service
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_exponential_jitter

from cryptoapp import __version__
from cryptoapp.coins import Coin
from cryptoapp.metrics import API_CALLS
from cryptoapp.prices.models import PriceTick
from cryptoapp.schema import COINGECKO, UTC
from cryptoapp.sources import SourceHealth
from cryptoapp.sources.budget import spacing
from cryptoapp.sources.coingecko_answers import (JUMP_LIMIT, JUMP_REASON, SourceError, parse_simple_price,
                                                 simple_price_params)

log = logging.getLogger(__name__)

SOURCE = COINGECKO
# A jump seen at this many distinct source times in a row, the prices agreeing within 2x, is believed:
# otherwise one bad value stored once (or remembered across restarts) would block a coin for good.
JUMP_CONFIRMATIONS = 3
MAX_PAUSE = 900.0  # longest wait after repeated rate limits (s)
MIN_PAUSE = 1.0  # shortest first wait after a rate limit without Retry-After (s)
REPEAT_WARNING_EVERY = 600.0  # an unchanged problem is named again after this many seconds


class Retryable(SourceError):
    """A fault that may pass within seconds: timeout, connection error, HTTP 5xx."""


class RateLimited(SourceError):
    def __init__(self, message: str, retry_after: Optional[float]):
        super().__init__(message)
        self.retry_after = retry_after


def _retry_after(headers) -> Optional[float]:
    """Seconds from a Retry-After header: a number of seconds or an HTTP date (RFC 9110); None when absent."""
    value = headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        return max(0.0, (when - dt.datetime.now(UTC)).total_seconds())


def rate_limit_pause(retry_after: Optional[float], in_a_row: int, interval: float) -> float:
    """Seconds to wait after the `in_a_row`-th 429 in a row: Retry-After when given (CoinGecko documents
    none), else exponential backoff from the poll interval with full jitter, capped at MAX_PAUSE."""
    if retry_after is not None:
        return retry_after
    return random.uniform(0.5, 1.0) * min(MAX_PAUSE, max(MIN_PAUSE, interval) * 2 ** in_a_row)


class CoinGeckoClient(Service):
    """HTTP access to CoinGecko's API: one shared session, timeouts, the request budget, retries."""

    def __init__(self, api_url: str, api_key: Optional[str], budget, timeout: float = 20.0, **kwargs):
        super().__init__(**kwargs)
        self.api_url = api_url.rstrip("/")
        self.api_key = api_key
        self.budget = budget  # cryptoapp.sources.budget (or anything used as `async with budget:`)
        self.timeout = timeout
        self.session: Optional[aiohttp.ClientSession] = None
        self.calls = 0

    async def on_start(self) -> None:
        headers = {"Accept": "application/json", "User-Agent": f"cryptoapp/{__version__}"}
        if self.api_key:
            # A Pro key is sent to pro-api.coingecko.com, a Demo key everywhere else.
            pro = "pro-api." in self.api_url
            headers["x-cg-pro-api-key" if pro else "x-cg-demo-api-key"] = self.api_key
        self.session = aiohttp.ClientSession(headers=headers, timeout=aiohttp.ClientTimeout(
            total=self.timeout, connect=min(5.0, self.timeout), sock_read=self.timeout))

    async def on_stop(self) -> None:
        if self.session is not None:
            await self.session.close()

    async def _get_once(self, path: str, params: dict[str, str]) -> Any:
        assert self.session is not None, "CoinGeckoClient used before start"
        async with self.budget:
            self.calls += 1
            outcome = "error"
            try:
                async with self.session.get(f"{self.api_url}{path}", params=params) as resp:
                    body = await resp.read()
                    outcome = "ok" if resp.status == 200 else "rate_limited" if resp.status == 429 else "error"
                    if resp.status == 429:
                        raise RateLimited("CoinGecko rate limit (HTTP 429)", _retry_after(resp.headers))
                    if resp.status >= 500:
                        raise Retryable(f"CoinGecko answered HTTP {resp.status}")
                    kind = resp.headers.get("Content-Type", "")
                    if resp.status != 200:
                        what = "an HTML page (a CDN block?)" if "html" in kind else body[:120].decode(errors="replace")
                        raise SourceError(f"CoinGecko answered HTTP {resp.status} with {what}: "
                                          "check COINGECKO_API_URL and COINGECKO_API_KEY")
                    if "json" not in kind:
                        raise SourceError(f"CoinGecko answered {kind or 'no content type'}, not JSON "
                                          "(a CDN or proxy page?)")
            except (aiohttp.ClientConnectionError, asyncio.TimeoutError) as exc:
                raise Retryable(f"CoinGecko unreachable at {self.api_url} ({exc.__class__.__name__})") from None
            finally:
                API_CALLS.labels(SOURCE, outcome).inc()
        try:
            return json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise SourceError(f"CoinGecko answered invalid JSON ({exc}); the answer is skipped") from None

    async def get_json(self, path: str, params: dict[str, str]) -> Any:
        """GET with up to 3 tries for passing faults (timeouts, 5xx); rate limits go to the caller."""
        async for attempt in AsyncRetrying(
            retry=retry_if_exception_type(Retryable), stop=stop_after_attempt(3),
            wait=wait_exponential_jitter(multiplier=1, max=10), reraise=True,
        ):
            with attempt:
                return await self._get_once(path, params)
        raise AssertionError("unreachable")

    async def coins_markets(self, ids: Optional[list[str]] = None, per_page: int = 250, page: int = 1) -> Any:
        """GET /coins/markets in USD, largest market cap first (id, symbol, name, market_cap, market_cap_rank,
        ...): `ids` narrows it to those coins. cryptoapp.coins.parse_coins_markets reads the answer."""
        params = {"vs_currency": "usd", "order": "market_cap_desc", "per_page": str(per_page), "page": str(page),
                  "sparkline": "false"}
        if ids:
            params["ids"] = ",".join(ids)
        return await self.get_json("/coins/markets", params)


class CoinGeckoSource(Service):
    """Live prices from /simple/price; backs off on rate limits and never stores a bad answer."""

    name = SOURCE

    def __init__(self, coins: tuple[Coin, ...], api_url: str, api_key: Optional[str],
                 budget, calls_per_minute: int, interval: float = 60.0, timeout: float = 20.0, **kwargs):
        super().__init__(**kwargs)
        self.coins = coins
        self.interval = interval
        self.calls_per_minute = calls_per_minute
        self.client = CoinGeckoClient(api_url, api_key, budget, timeout=timeout)
        self.health = SourceHealth()
        self.last_values: dict[str, float] = {}
        self._jump_candidates: dict[str, list[tuple[Any, float]]] = {}
        self._warned: dict[str, tuple[str, float]] = {}
        self._paused_until = 0.0
        self._rate_limits_in_a_row = 0

    async def on_first_start(self) -> None:
        if self.interval < spacing(self.calls_per_minute):
            log.warning("CRYPTO_INTERVAL=%g s asks for more calls than CRYPTO_REQUESTS_PER_MINUTE=%d allows: polls "
                        "go every %.1f s; raise the budget to your plan's limit, or the interval",
                        self.interval, self.calls_per_minute, spacing(self.calls_per_minute))
        await self.add_runtime_dependency(self.client)

    def remember(self, values: Mapping[str, float]) -> None:
        """Last known prices from elsewhere (the restored latest_prices table), for coins not seen yet."""
        for ticker, value in values.items():
            self.last_values.setdefault(ticker, value)

    def _warn(self, key: str, message: str) -> None:
        """One warning per problem: repeated only when it changes, or every REPEAT_WARNING_EVERY s."""
        now = time.monotonic()
        last = self._warned.get(key)
        if last is None or last[0] != message or now - last[1] >= REPEAT_WARNING_EVERY:
            log.warning("%s", message)
            self._warned[key] = (message, now)

    def _confirmed_jumps(self, payload: dict, skipped: dict[str, str], fetched_at: dt.datetime) -> list[PriceTick]:
        """Ticks of coins whose jump has now been seen JUMP_CONFIRMATIONS times; they leave `skipped`."""
        confirmed = []
        for coin in self.coins:
            if JUMP_REASON not in skipped.get(coin.ticker, ""):
                self._jump_candidates.pop(coin.ticker, None)
                continue
            entry = payload[coin.coin_id]
            price, updated = entry["usd"], entry.get("last_updated_at")
            seen = self._jump_candidates.setdefault(coin.ticker, [])
            if seen and not 0.5 <= price / seen[0][1] <= 2:
                seen.clear()  # the candidates disagree with each other: noise, not a new level
            if updated not in [u for u, _ in seen]:
                seen.append((updated, price))
            if len(seen) >= JUMP_CONFIRMATIONS:
                ticks, _ = parse_simple_price(payload, (coin,), fetched_at)
                if ticks:
                    log.warning("CoinGecko: %s accepted at %r: %d answers in a row, at different source "
                                "times, agree on a move over %gx from %r", coin.ticker, price,
                                JUMP_CONFIRMATIONS, JUMP_LIMIT, self.last_values.get(coin.ticker))
                    confirmed += ticks
                    del skipped[coin.ticker]
                del self._jump_candidates[coin.ticker]
        return confirmed

    def _pause_for_rate_limit(self, exc: RateLimited) -> None:
        self._rate_limits_in_a_row += 1
        wait = rate_limit_pause(exc.retry_after, self._rate_limits_in_a_row, self.interval)
        self._paused_until = time.monotonic() + wait
        log.warning("%s: pausing CoinGecko polls for %.0f s%s; set COINGECKO_API_KEY or raise CRYPTO_INTERVAL",
                    exc, wait, " (Retry-After)" if exc.retry_after is not None else "")

    async def fetch(self) -> list[PriceTick]:
        if time.monotonic() < self._paused_until:
            return []
        fetched_at = dt.datetime.now(UTC)
        try:
            payload = await self.client.get_json("/simple/price", simple_price_params(self.coins))
            ticks, skipped = parse_simple_price(payload, self.coins, fetched_at, self.last_values)
        except RateLimited as exc:
            self._pause_for_rate_limit(exc)
            self.health.failed(str(exc))
            return []
        except SourceError as exc:
            self._warn("poll", f"CoinGecko poll skipped: {exc}")
            self.health.failed(str(exc))
            return []
        self.health.ok()
        self._rate_limits_in_a_row = 0
        self._warned.pop("poll", None)
        ticks += self._confirmed_jumps(payload, skipped, fetched_at)
        for coin in self.coins:
            if coin.ticker in skipped:
                self._warn(coin.ticker, f"CoinGecko: {coin.ticker} skipped: {skipped[coin.ticker]}")
            else:
                self._warned.pop(coin.ticker, None)
        self.last_values.update({t.ticker: t.value for t in ticks})
        return ticks
