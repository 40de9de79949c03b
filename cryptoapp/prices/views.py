"""Faust web views: the latest tick of every series, and of one coin's series (routed to the worker that owns it)."""

from __future__ import annotations

from faust import web
from faust.exceptions import SameNode
from faust.web.exceptions import ServiceUnavailable

from cryptoapp.app import app, latest_prices
from cryptoapp.schema import COINGECKO, TICKER_RE, series_id


@app.page("/prices/")
async def all_prices(self: web.View, request: web.Request) -> web.Response:
    """Every series' latest tick held by this worker, by series: BTC (CoinGecko), BTC_binanceus (an exchange)."""
    return self.json({series: tick.to_json() for series, tick in sorted(latest_prices.items())})


@app.page("/prices/{ticker}/")
async def one_price(self: web.View, request: web.Request, ticker: str) -> web.Response:
    """One coin's latest tick, answered by the worker that owns the ticker's partition (table_route).

    CoinGecko's (the reference price) by default; `?source=binanceus` for an exchange's series.
    """
    if not TICKER_RE.fullmatch(ticker):
        return self.json({"error": "malformed ticker: use 1-15 upper-case letters or digits, e.g. BTC"},
                         status=404)
    source = request.query.get("source") or COINGECKO
    try:
        # As @app.table_route does, but after validating the input and with a JSON answer when the
        # partition owners are not known yet (start-up, rebalance) instead of a bare 500. Routed by the
        # ticker, not the series: every series of a coin is kept in its ticker's partition (track_latest).
        return await app.router.route_req(latest_prices.name, ticker, self.web, request)
    except SameNode:
        pass
    except (ServiceUnavailable, KeyError, TypeError):
        return self.json({"error": "the worker is starting or rebalancing: retry in a few seconds"}, status=503)
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
