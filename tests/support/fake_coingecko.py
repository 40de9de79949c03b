"""A local HTTP server that answers like CoinGecko's API (shapes from shared/reference/), misbehaving on command."""

from __future__ import annotations

import asyncio
import copy
import functools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from aiohttp import web

from testkit.served import ServedInThread

REFERENCE = Path(__file__).resolve().parents[3] / "shared" / "reference"
_LOCAL_REFERENCE = Path(__file__).resolve().parent / "reference"


def reference(name: str) -> Any:
    """A reference answer: shared/reference/ beside the project, or the copy kept in tests/support/reference/."""
    path = REFERENCE / name if (REFERENCE / name).exists() else _LOCAL_REFERENCE / name
    return json.loads(path.read_text())


@dataclass
class Call:
    path: str
    params: dict[str, str]
    headers: dict[str, str]


# (id, symbol, name, market cap) of the coins /coins/markets lists by default, largest first. Toncoin and
# Tokamak Network share the symbol "ton", as on CoinGecko.
MARKET_COINS = [
    ("bitcoin", "btc", "Bitcoin", 1317802988326), ("ethereum", "eth", "Ethereum", 416737298443),
    ("tether", "usdt", "Tether", 103612345678), ("binancecoin", "bnb", "BNB", 89912345678),
    ("solana", "sol", "Solana", 84512345678), ("usd-coin", "usdc", "USDC", 32112345678),
    ("ripple", "xrp", "XRP", 31912345678), ("dogecoin", "doge", "Dogecoin", 24012345678),
    ("toncoin", "ton", "Toncoin", 18712345678), ("cardano", "ada", "Cardano", 16512345678),
    ("avalanche-2", "avax", "Avalanche", 14812345678), ("shiba-inu", "shib", "Shiba Inu", 10912345678),
    ("aptos", "apt", "Aptos", 4212345678), ("render-token", "rndr", "Render", 3912345678),
    ("tokamak-network", "ton", "Tokamak Network", 112345678),
]


def markets_rows(coins=MARKET_COINS) -> list[dict]:
    """/coins/markets rows for `coins`, each shaped exactly like shared/reference/coingecko-coins-markets.json."""
    template = reference("coingecko-coins-markets.json")[0]
    rows = []
    for rank, (coin_id, symbol, name, cap) in enumerate(sorted(coins, key=lambda c: -c[3]), start=1):
        row = copy.deepcopy(template) if coin_id == template["id"] else {**copy.deepcopy(template), **{
            "id": coin_id, "symbol": symbol, "name": name,
            "image": f"https://assets.coingecko.com/coins/images/{rank}/large/{coin_id}.png",
            "market_cap": cap, "market_cap_rank": rank}}
        rows.append(row)
    return rows


def _recorded(handler):
    """A route of the fake: the call is noted in `calls`, and a `fault` that is set answers instead of `handler`."""

    @functools.wraps(handler)
    async def answer(self, request: web.Request) -> web.Response:
        self.calls.append(Call(request.path, dict(request.query), dict(request.headers)))
        failure = await self._fault_response()
        return failure if failure is not None else await handler(self, request)

    return answer


@dataclass
class FakeCoinGecko:
    """Answers /api/v3/simple/price from `prices` (a dict in CoinGecko's shape); `fault` makes it fail.

    fault: None | "429" | "429-retry-after" | "500" | "503" | "html-403" | "truncated" | "not-json" | "hang"
    """

    prices: dict = field(default_factory=lambda: copy.deepcopy(reference("coingecko-simple-price.json")))
    fault: Optional[str] = None
    retry_after: str = "2"
    calls: list[Call] = field(default_factory=list)
    chart_points: Optional[Any] = None  # callable(coin_id, from_s, to_s) -> market_chart/range answer
    markets: list = field(default_factory=markets_rows)  # /coins/markets rows, largest market cap first
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/v3"

    def calls_to(self, path: str) -> list[Call]:
        return [c for c in self.calls if c.path.endswith(path)]

    async def _fault_response(self) -> Optional[web.Response]:
        if self.fault is None:
            return None
        if self.fault.startswith("429"):
            headers = {"Retry-After": self.retry_after} if self.fault == "429-retry-after" else {}
            return web.json_response(reference("coingecko-429.json"), status=429, headers=headers)
        if self.fault in ("500", "503"):
            return web.json_response({"error": "Internal Server Error"}, status=int(self.fault))
        if self.fault == "html-403":
            return web.Response(status=403, text="<html><body>Access denied</body></html>", content_type="text/html")
        if self.fault == "truncated":
            return web.Response(status=200, text=json.dumps(self.prices)[:40], content_type="application/json")
        if self.fault == "not-json":
            return web.Response(status=200, text="<html>maintenance</html>", content_type="text/html")
        if self.fault == "hang":
            await asyncio.sleep(60)
        raise AssertionError(f"unknown fault {self.fault}")

    @_recorded
    async def simple_price(self, request: web.Request) -> web.Response:
        ids = request.query.get("ids", "").split(",")
        # CoinGecko leaves ids it does not know out of the answer.
        return web.json_response({i: self.prices[i] for i in ids if i in self.prices})

    @_recorded
    async def market_chart_range(self, request: web.Request) -> web.Response:
        coin_id = request.match_info["coin_id"]
        answer = self.chart_points(coin_id, int(request.query["from"]), int(request.query["to"]))
        return web.json_response(answer)

    @_recorded
    async def coins_markets(self, request: web.Request) -> web.Response:
        """/coins/markets: `ids` narrows the list, `per_page` (at most 250) and `page` cut it, largest first."""
        if "vs_currency" not in request.query:
            return web.json_response({"error": "Missing parameter vs_currency"}, status=400)
        rows = self.markets
        if request.query.get("ids"):
            ids = set(request.query["ids"].split(","))
            rows = [r for r in rows if r["id"] in ids]
        per_page = min(250, int(request.query.get("per_page", 100)))
        page = int(request.query.get("page", 1))
        return web.json_response(rows[(page - 1) * per_page:page * per_page])


class FakeCoinGeckoServer(ServedInThread):
    """Runs a FakeCoinGecko on 127.0.0.1 in a thread of its own, for a worker subprocess to call."""

    def routes(self, app: web.Application) -> None:
        app.router.add_get("/api/v3/simple/price", self.fake.simple_price)
        app.router.add_get("/api/v3/coins/{coin_id}/market_chart/range", self.fake.market_chart_range)
        app.router.add_get("/api/v3/coins/markets", self.fake.coins_markets)
