"""A local server that speaks Binance US's public market-data protocol (REST exchangeInfo, WebSocket streams), misbehaving on command."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Optional

from aiohttp import WSMsgType, web

from testkit.processes import free_port
from tests.support.fake_coingecko import reference

# Binance answers a request it cannot read with an error object and the request's id
# (shared/reference/exchanges.md); a stream name is <lower-case symbol>@<channel>.
_STREAM_RE = re.compile(r"[a-z0-9]+@(ticker|bookTicker|trade)")
_FILTERS = [
    {"filterType": "PRICE_FILTER", "minPrice": "0.01000000", "maxPrice": "1000000.00000000", "tickSize": "0.01000000"},
    {"filterType": "PERCENT_PRICE", "multiplierUp": "5", "multiplierDown": "0.2", "avgPriceMins": "5"},
    {"filterType": "LOT_SIZE", "minQty": "0.00001000", "maxQty": "9000.00000000", "stepSize": "0.00001000"},
    {"filterType": "MIN_NOTIONAL", "minNotional": "1.00000000", "applyToMarket": True, "avgPriceMins": "5"},
    {"filterType": "ICEBERG_PARTS", "limit": "10"},
    {"filterType": "MARKET_LOT_SIZE", "minQty": "0.00000000", "maxQty": "24.60517579", "stepSize": "0.00000000"},
    {"filterType": "TRAILING_DELTA", "minTrailingAboveDelta": "10", "maxTrailingAboveDelta": "2000",
     "minTrailingBelowDelta": "10", "maxTrailingBelowDelta": "2000"},
    {"filterType": "MAX_NUM_ORDERS", "maxNumOrders": "200"},
    {"filterType": "MAX_NUM_ALGO_ORDERS", "maxNumAlgoOrders": "5"},
]


def symbol_info(base: str, quote: str, status: str = "TRADING") -> dict[str, Any]:
    """One element of exchangeInfo's `symbols`, shaped like Binance US's (ccxt's binanceus market fixture)."""
    return {
        "symbol": f"{base}{quote}", "status": status, "baseAsset": base, "baseAssetPrecision": 8,
        "quoteAsset": quote, "quotePrecision": 8, "quoteAssetPrecision": 8, "baseCommissionPrecision": 8,
        "quoteCommissionPrecision": 8,
        "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT"],
        "icebergAllowed": True, "ocoAllowed": True, "quoteOrderQtyMarketAllowed": True, "allowTrailingStop": True,
        "cancelReplaceAllowed": True, "isSpotTradingAllowed": True, "isMarginTradingAllowed": False,
        "filters": copy.deepcopy(_FILTERS), "permissions": ["SPOT"],
        "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
        "allowedSelfTradePreventionModes": ["EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH"],
    }


def default_symbols() -> list[dict[str, Any]]:
    """Binance US's books for the five default coins: ETH/USD halted (status BREAK, as in ccxt's fixture) so
    ETH falls back to ETH/USDT; USDT only against USD; USDC listed against USD and USDT."""
    return [symbol_info("BTC", "USD"), symbol_info("BTC", "USDT"), symbol_info("ETH", "USD", status="BREAK"),
            symbol_info("ETH", "USDT"), symbol_info("BNB", "USD"), symbol_info("BNB", "USDT"),
            symbol_info("USDT", "USD"), symbol_info("USDC", "USD"), symbol_info("USDC", "USDT"),
            symbol_info("LTC", "USD", status="BREAK"), symbol_info("LTC", "USDT")]


# Starting prices of the books above (last trade); bid and ask sit one tick either side.
START_PRICES = {"BTCUSD": 67187.33, "BTCUSDT": 67190.12, "ETHUSD": 3470.5, "ETHUSDT": 3471.25, "BNBUSD": 597.1,
                "BNBUSDT": 597.3, "USDTUSD": 1.0001, "USDCUSD": 0.9999, "USDCUSDT": 0.9998, "LTCUSD": 84.2,
                "LTCUSDT": 84.25}


@dataclass
class Sent:
    """One @ticker update the fake sent: what the source should see."""

    symbol: str
    event_ms: int
    last: float
    bid: float
    ask: float
    bid_qty: float
    ask_qty: float
    quote_volume: float


@dataclass
class Connection:
    ws: web.WebSocketResponse
    path: str
    streams: set[str] = field(default_factory=set)
    opened: float = field(default_factory=time.monotonic)
    last_pong: float = field(default_factory=time.monotonic)


@dataclass
class FakeBinanceUS:
    """The state and the commands of the fake: its books, the connections and what was sent on them.

    Commands: `push(symbol)` sends one @ticker update to every subscriber; `stream(rate_hz)` pushes every
    subscribed symbol `rate_hz` times a second; `drop()` closes every socket; `silence()` stops all updates
    (the connection stays up and pings are answered: a stall); `dead = True` also stops the pongs (a half-open
    link, found by the client's keepalive); `send_raw(text)` sends any text frame.
    """

    symbols: list[dict[str, Any]] = field(default_factory=default_symbols)
    port: int = 0
    connections: list[Connection] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)  # every JSON request received on a socket
    sent: list[Sent] = field(default_factory=list)
    exchange_info_calls: int = 0
    connections_opened: int = 0
    silent: bool = False
    dead: bool = False  # a half-open link: no updates, no answers, no pongs
    ping_every_s: float = 20.0
    pong_timeout_s: float = 60.0
    pongs: int = 0  # pongs received from clients
    trades_sent: list[dict[str, Any]] = field(default_factory=list)  # every <symbol>@trade event, as sent
    replay_trades: int = 0  # a new @trade subscription is first sent the symbol's last N trades again (duplicates)
    kline_changes: dict[tuple[str, int], dict[str, str]] = field(default_factory=dict)  # (symbol, open ms) -> fields
    _trade_ids: dict[str, int] = field(default_factory=dict)
    price_offset: float = 0.0  # added to every price: a second fake that bids above the first one's ask
    _seq: dict[str, int] = field(default_factory=dict)
    _streamer: Optional[asyncio.Task] = None

    @property
    def rest_url(self) -> str:
        """What ccxt's urls['api']['public'] points at (Binance US: https://api.binance.us/api/v3)."""
        return f"http://127.0.0.1:{self.port}/api/v3"

    @property
    def ws_url(self) -> str:
        """What ccxt's urls['api']['ws']['spot'] points at (Binance US: wss://stream.binance.us:9443/ws)."""
        return f"ws://127.0.0.1:{self.port}/ws"

    def subscribed(self) -> set[str]:
        return set().union(*(c.streams for c in self.connections)) if self.connections else set()

    # --- REST ------------------------------------------------------------------------------------------
    async def exchange_info(self, request: web.Request) -> web.Response:
        self.exchange_info_calls += 1
        return web.json_response({
            "timezone": "UTC", "serverTime": int(time.time() * 1000),
            "rateLimits": [
                {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 1200},
                {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 100},
                {"rateLimitType": "RAW_REQUESTS", "interval": "MINUTE", "intervalNum": 5, "limit": 61000}],
            "exchangeFilters": [], "symbols": self.symbols,
        }, headers={"x-mbx-used-weight-1m": str(10 * self.exchange_info_calls)})

    # --- WebSocket -------------------------------------------------------------------------------------
    async def websocket(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=False, heartbeat=None)
        await ws.prepare(request)
        conn = Connection(ws, request.path)
        self.connections.append(conn)
        self.connections_opened += 1
        pinger = asyncio.get_running_loop().create_task(self._ping(conn))
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT and not self.dead:
                    await self._request(conn, msg.data)
                elif msg.type == WSMsgType.PING and not self.dead:
                    await ws.pong(msg.data)  # Binance answers a client's ping with a pong of the same payload
                elif msg.type == WSMsgType.PONG:
                    conn.last_pong = time.monotonic()
                    self.pongs += 1
        finally:
            pinger.cancel()
            self.connections.remove(conn)
        return ws

    async def _ping(self, conn: Connection) -> None:
        """Binance pings every `ping_every_s` (20 s) and disconnects a client whose pong is `pong_timeout_s`
        (1 minute) late."""
        while not conn.ws.closed:
            await asyncio.sleep(self.ping_every_s)
            if time.monotonic() - conn.last_pong > self.pong_timeout_s:
                await conn.ws.close(code=1008, message=b"pong timeout")
                return
            if not self.dead:
                with contextlib.suppress(ConnectionError, RuntimeError):
                    await conn.ws.ping(b"")

    async def _request(self, conn: Connection, text: str) -> None:
        try:
            req = json.loads(text)
        except ValueError:
            await conn.ws.send_json({"error": {"code": 3, "msg": "Invalid JSON: expected value at line 1 column 1"}})
            return
        self.requests.append(req)
        req_id = req.get("id")
        method, params = req.get("method"), req.get("params", [])
        if method in ("SUBSCRIBE", "UNSUBSCRIBE"):
            bad = [p for p in params if not isinstance(p, str) or not _STREAM_RE.fullmatch(p)]
            if bad:
                await conn.ws.send_json({"error": {"code": 2, "msg": "Invalid request: invalid stream"}, "id": req_id})
                return
            if method == "SUBSCRIBE":
                conn.streams.update(params)
            else:
                conn.streams.difference_update(params)
            await conn.ws.send_json({"result": None, "id": req_id})
            if method == "SUBSCRIBE" and self.replay_trades:
                for stream in [p for p in params if p.endswith("@trade")]:
                    mine = [t for t in self.trades_sent if t["s"].lower() == stream[:-6]][-self.replay_trades:]
                    for trade in mine:
                        await conn.ws.send_str(json.dumps(_framed(conn, stream, trade)))
        elif method == "LIST_SUBSCRIPTIONS":
            await conn.ws.send_json({"result": sorted(conn.streams), "id": req_id})
        else:
            await conn.ws.send_json({"error": {"code": 2, "msg": f"Invalid request: unknown variant {method}, expected "
                                               "one of SUBSCRIBE, UNSUBSCRIBE, LIST_SUBSCRIPTIONS, SET_PROPERTY, "
                                               "GET_PROPERTY"}, "id": req_id})

    def ticker_message(self, symbol: str) -> tuple[dict[str, Any], Sent]:
        """The next 24hrTicker event of `symbol`, shaped like shared/reference/binance-ws-ticker.json; every
        update moves the last price by one tick, so a test can tell which update a tick came from."""
        n = self._seq[symbol] = self._seq.get(symbol, 0) + 1
        start = START_PRICES.get(symbol, 100.0) + self.price_offset
        last = round(start + 0.01 * n, 2)
        bid, ask = round(last - 0.01, 2), round(last + 0.01, 2)
        bid_qty, ask_qty = round(1 + n * 0.001, 8), round(2 + n * 0.001, 8)
        now = int(time.time() * 1000)
        msg = copy.deepcopy(reference("binance-ws-ticker.json"))
        base_volume = 27342.1128 + n
        msg.update({
            "E": now, "s": symbol, "c": f"{last:.8f}", "b": f"{bid:.8f}", "B": f"{bid_qty:.8f}", "a": f"{ask:.8f}",
            "A": f"{ask_qty:.8f}", "o": f"{start:.8f}", "x": f"{start:.8f}", "h": f"{max(start, last):.8f}",
            "l": f"{min(start, last):.8f}", "p": f"{last - start:.8f}", "P": f"{(last - start) / start * 100:.3f}",
            "w": f"{(start + last) / 2:.8f}", "v": f"{base_volume:.8f}",
            "q": f"{base_volume * (start + last) / 2:.2f}", "O": now - 86_400_000, "C": now,
            "F": 3501234567 + n, "L": 3502234567 + n, "n": 1000001 + n,
        })
        return msg, Sent(symbol, now, last, bid, ask, bid_qty, ask_qty, float(msg["q"]))

    async def push(self, symbol: str) -> Optional[Sent]:
        """One @ticker update of `symbol` to every connection subscribed to it (none while silent)."""
        stream = f"{symbol.lower()}@ticker"
        targets = [c for c in self.connections if stream in c.streams and not c.ws.closed]
        if self.silent or self.dead or not targets:
            return None
        msg, sent = self.ticker_message(symbol)
        text = json.dumps(msg)
        for conn in targets:
            with contextlib.suppress(ConnectionError, RuntimeError):
                await conn.ws.send_str(text)
        self.sent.append(sent)
        return sent

    def trade_message(self, symbol: str, price: float, qty: float, maker: bool = False,
                      time_ms: Optional[int] = None, trade_id: Optional[int] = None) -> dict[str, Any]:
        """The next `<symbol>@trade` event of `symbol`, as Binance US documents it (ids count up per symbol)."""
        ident = trade_id if trade_id is not None else self._trade_ids.get(symbol, 28457000) + 1
        self._trade_ids[symbol] = max(ident, self._trade_ids.get(symbol, 0))
        now = int(time.time() * 1000)
        return {"e": "trade", "E": now, "s": symbol, "t": ident, "p": f"{price:.8f}", "q": f"{qty:.8f}",
                "b": 88000000 + ident, "a": 50000000 + ident, "T": time_ms if time_ms is not None else now,
                "m": maker, "M": True}

    async def push_trade(self, symbol: str, price: float, qty: float, maker: bool = False,
                         time_ms: Optional[int] = None, trade_id: Optional[int] = None,
                         raw: Optional[dict[str, Any]] = None) -> dict[str, Any]:
        """One trade of `symbol` to every connection subscribed to `<symbol>@trade` (`raw`: send that event as it
        is, e.g. one with a field missing); recorded in trades_sent unless raw."""
        msg = raw if raw is not None else self.trade_message(symbol, price, qty, maker, time_ms, trade_id)
        stream = f"{symbol.lower()}@trade"
        for conn in [c for c in self.connections if stream in c.streams and not c.ws.closed]:
            with contextlib.suppress(ConnectionError, RuntimeError):
                await conn.ws.send_str(json.dumps(_framed(conn, stream, msg)))
        if raw is None:
            self.trades_sent.append(msg)
        return msg

    async def klines(self, request: web.Request) -> web.Response:
        """GET /api/v3/klines?symbol=&interval=1m[&startTime][&endTime][&limit]: the 1 m klines of the trades sent,
        as Binance answers (arrays: open time, o, h, l, c, volume, close time, quote volume, trades, taker buy
        base, taker buy quote, "0"), with kline_changes applied."""
        q = request.query
        symbol = q.get("symbol")
        if q.get("interval") != "1m" or not any(s["symbol"] == symbol for s in self.symbols):
            return web.json_response({"code": -1121, "msg": "Invalid symbol."}, status=400)
        start, end = int(q.get("startTime", 0)), int(q.get("endTime", 2 ** 62))
        limit = min(int(q.get("limit", 500)), 1000)
        minutes: dict[int, list[dict]] = {}
        for trade in self.trades_sent:
            if trade["s"] == symbol:
                minutes.setdefault(trade["T"] // 60000 * 60000, []).append(trade)
        rows = []
        for open_ms in sorted(m for m in minutes if start <= m <= end)[:limit]:
            group = sorted(minutes[open_ms], key=lambda t: (t["T"], t["t"]))
            prices = [float(t["p"]) for t in group]
            base = sum(float(t["q"]) for t in group)
            quote = sum(float(t["q"]) * float(t["p"]) for t in group)
            buy = [t for t in group if not t["m"]]
            row = {"o": group[0]["p"], "h": f"{max(prices):.8f}", "l": f"{min(prices):.8f}", "c": group[-1]["p"],
                   "v": f"{base:.8f}", "qv": f"{quote:.8f}", "bv": f"{sum(float(t['q']) for t in buy):.8f}",
                   "bq": f"{sum(float(t['q']) * float(t['p']) for t in buy):.8f}",
                   **self.kline_changes.get((symbol, open_ms), {})}
            rows.append([open_ms, row["o"], row["h"], row["l"], row["c"], row["v"], open_ms + 59999, row["qv"],
                         len(group), row["bv"], row["bq"], "0"])
        return web.json_response(rows)

    async def _stream(self, rate_hz: float) -> None:
        while True:
            for stream in sorted(self.subscribed()):
                if stream.endswith("@ticker"):
                    symbol = next((s["symbol"] for s in self.symbols if s["symbol"].lower() == stream[:-7]), None)
                    if symbol:
                        await self.push(symbol)
            await asyncio.sleep(1 / rate_hz)

    async def stream(self, rate_hz: float) -> None:
        """Push every subscribed @ticker stream `rate_hz` times a second until `stop_stream()`."""
        self.stop_stream()
        self._streamer = asyncio.get_running_loop().create_task(self._stream(rate_hz))

    def stop_stream(self) -> None:
        if self._streamer is not None:
            self._streamer.cancel()
            self._streamer = None

    async def drop(self, abrupt: bool = False) -> int:
        """Close every socket, as Binance does at the 24-hour limit (close frame) or as a dead link does
        (`abrupt`: the TCP connection goes without a close frame). Returns how many were dropped."""
        conns = list(self.connections)
        for conn in conns:
            if abrupt:
                transport = conn.ws._req.transport if conn.ws._req is not None else None
                if transport is not None:
                    transport.abort()
            else:
                await conn.ws.close(code=1001, message=b"")
        return len(conns)

    async def send_raw(self, text: str) -> int:
        """Send `text` as a text frame on every open socket (a malformed message); returns how many got it."""
        conns = [c for c in self.connections if not c.ws.closed]
        for conn in conns:
            await conn.ws.send_str(text)
        return len(conns)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/api/v3/exchangeInfo", self.exchange_info)
        app.router.add_get("/api/v3/klines", self.klines)
        # ccxt appends /<stream index> to the base URL; Binance accepts /ws and /ws/<name>.
        app.router.add_get("/ws", self.websocket)
        app.router.add_get("/ws/{name}", self.websocket)
        app.router.add_get("/stream", self.websocket)  # combined streams: events come as {"stream", "data"}
        return app


def _framed(conn: Connection, stream: str, event: dict[str, Any]) -> dict[str, Any]:
    """An event as Binance sends it on this connection: raw on /ws (how ccxt subscribes), wrapped as
    {"stream": ..., "data": ...} on the combined-stream endpoint /stream."""
    return {"stream": stream, "data": event} if conn.path.startswith("/stream") else event


@contextlib.asynccontextmanager
async def running(fake: Optional[FakeBinanceUS] = None):
    """`async with running() as fake:` serves a FakeBinanceUS on 127.0.0.1 in the current event loop."""
    fake = fake or FakeBinanceUS()
    fake.port = free_port()
    runner = web.AppRunner(fake.app(), shutdown_timeout=1.0)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", fake.port).start()
    try:
        yield fake
    finally:
        fake.stop_stream()
        await fake.drop()
        await runner.cleanup()


class FakeBinanceUSServer:
    """Runs a FakeBinanceUS in a thread of its own, for a worker subprocess to connect to; `call(coro)`
    runs one of its commands there, e.g. `server.call(fake.drop())`."""

    def __init__(self, fake: Optional[FakeBinanceUS] = None):
        self.fake = fake or FakeBinanceUS()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._context = None

    def call(self, coro, timeout: float = 10):
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def __enter__(self) -> FakeBinanceUS:
        self._thread.start()
        self._context = running(self.fake)
        self.call(self._context.__aenter__())
        return self.fake

    def __exit__(self, *exc) -> None:
        self.call(self._context.__aexit__(None, None, None))
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()
