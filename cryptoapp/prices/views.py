"""Faust web views: the latest tick of every series, and of one coin's series (routed to the worker that owns it)."""

from __future__ import annotations

import datetime as dt
from typing import Optional

import aiohttp
from faust import web
from faust.exceptions import SameNode
from faust.web.exceptions import ServiceUnavailable

from cryptoapp.app import app, latest_prices
from cryptoapp.metrics import readable_since
from cryptoapp.prices.best import Quote, best_quote
from cryptoapp.prices.models import UTC
from cryptoapp.schema import COINGECKO, TICKER_RE, series_id

PEER_TIMEOUT = 3.0  # seconds another worker has to list its partitions' prices


def owned_prices() -> dict[str, dict]:
    """The latest ticks of the series whose partition this worker owns now (a memory table keeps the rows of a
    partition it lost until a restart: those are another worker's to answer)."""
    changelog = latest_prices.changelog_topic.get_topic_name()
    owned = {tp.partition for tp in app.assignor.assigned_actives() if tp.topic == changelog}
    return {series: tick.to_json() for series, tick in latest_prices.items()
            if app.producer.key_partition(changelog, tick.ticker.encode()).partition in owned}


@app.page("/prices/")
async def all_prices(self: web.View, request: web.Request) -> web.Response:
    """Every series' latest tick, by series: BTC (CoinGecko), BTC_binanceus (an exchange). Each worker answers for
    its own partitions and asks the others for theirs, so any worker lists them all (`?local=1`: its own only)."""
    prices = owned_prices()
    if request.query.get("local") != "1":
        me = str(app.conf.canonical_url).rstrip("/")
        for url in app.router.tables_metadata():
            if str(url).rstrip("/") == me:
                continue
            try:
                async with app.http_client.get(f"{str(url).rstrip('/')}/prices/?local=1", timeout=aiohttp.ClientTimeout(total=PEER_TIMEOUT)) as r:
                    prices.update(await r.json())
            except Exception as exc:  # a peer that is stopping or restarting: its series are missing, said so
                prices.setdefault("_unreachable", []).append(f"{url} ({exc.__class__.__name__})")
    return self.json(dict(sorted(prices.items())))


async def _owners_answer(view: web.View, request: web.Request, ticker: str) -> Optional[web.Response]:
    """The answer for a coin's page when this worker is not the one to give it: an error for a malformed ticker or
    while the owners are unknown, or the owner's own answer; None when this worker owns the ticker's partition.

    As @app.table_route does, but after validating the input, with a JSON answer when the partition owners are not
    known yet (start-up, rebalance) instead of a bare 500, and routed by the partition the ticks are in: the table's
    entries follow their messages, keyed by the ticker's raw bytes, while table_route would hash the table's
    JSON-encoded key and lead to another partition's worker."""
    if not TICKER_RE.fullmatch(ticker):
        return view.json({"error": "malformed ticker: use 1-15 upper-case letters or digits, e.g. BTC"}, status=404)
    try:
        owner = app.assignor.key_store(latest_prices.changelog_topic.get_topic_name(), ticker.encode())
        return await app.router._route_req(owner, view.web, request)
    except SameNode:
        return None
    except (ServiceUnavailable, KeyError, TypeError):
        return view.json({"error": "the worker is starting or rebalancing: retry in a few seconds"}, status=503)


@app.page("/prices/{ticker}/")
async def one_price(self: web.View, request: web.Request, ticker: str) -> web.Response:
    """One coin's latest tick, answered by the worker that owns the ticker's partition (table_route).

    CoinGecko's (the reference price) by default; `?source=binanceus` for an exchange's series.
    """
    elsewhere = await _owners_answer(self, request, ticker)
    if elsewhere is not None:
        return elsewhere
    source = request.query.get("source") or COINGECKO
    tick = latest_prices.get(series_id(ticker, source))
    if tick is None:
        if source == COINGECKO and app.settings.polled_source is None:
            return self.json({"error": f"no CoinGecko price for {ticker}: CRYPTO_SOURCES has only the exchange; ask "
                                       f"/prices/{ticker}/?source={app.settings.exchange}"}, status=404)
        if source == COINGECKO:
            return self.json({"error": f"no price for {ticker} yet: is it in CRYPTO_SYMBOLS?"}, status=404)
        return self.json({"error": f"no price for {ticker} from {source} yet: is it in CRYPTO_SYMBOLS, is {source} "
                                   "in CRYPTO_SOURCES (as CRYPTO_EXCHANGE), and does it list the coin?"}, status=404)
    return self.json(tick.to_json())


@app.page("/prices/{ticker}/best/")
async def best_price(self: web.View, request: web.Request, ticker: str) -> web.Response:
    """The best bid and ask across CRYPTO_EXCHANGES for one coin (cryptoapp/prices/best.py), answered by the worker
    that owns the ticker's partition: every series of a coin is keyed by its ticker, so one worker holds them all.
    Quotes in one currency only: `?currency=usdt`, by default the first exchange's."""
    elsewhere = await _owners_answer(self, request, ticker)
    if elsewhere is not None:
        return elsewhere
    ticks = [latest_prices.get(series_id(ticker, exchange)) for exchange in app.settings.exchanges]
    quotes = [Quote(t.source, t.bid_price, t.ask_price, t.timestamp, t.currency) for t in ticks if t is not None]
    return self.json(best_quote(ticker, quotes, dt.datetime.now(UTC), app.settings.best_max_age_s,
                                request.query.get("currency")))


@app.page("/latency/")
async def latency(self: web.View, request: web.Request) -> web.Response:
    """When this worker's recent ticks became readable: [created, readable] Unix times per tick (creation is the
    tick's fetched_at, readable the acknowledgement of its batch's archive write); `?since=<Unix s>` narrows it.
    The benchmarks take exact percentiles from it; /metrics has the same as a histogram."""
    try:
        since = float(request.query.get("since", "0"))
    except ValueError:
        return self.json({"error": "since is a Unix time in seconds"}, status=400)
    return self.json({"samples": readable_since(since)})
