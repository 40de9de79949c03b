"""A local webhook receiver that answers like Slack, Discord or a plain JSON endpoint, misbehaving on command.

Answers as the real services document them: Slack incoming webhooks answer 200 with the body `ok`, 400
`invalid_payload` without text, 429 with Retry-After (seconds); Discord webhooks answer 204 No Content,
400 {"message": "Cannot send an empty message", "code": 50006} without content, 429 with a JSON body
{"message", "retry_after", "global"} and Retry-After. The plain endpoint (/hook/...) is the receiver
cryptoapp documents: 200 {"ok": true}, deduplicating on the Idempotency-Key header.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any, Optional

from aiohttp import web

from testkit.served import ServedInThread


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: Any  # the parsed JSON, or the raw text when it is not JSON
    status: int  # what the fake answered (0 while it has not)
    at: float = 0.0  # time.monotonic() when it arrived
    received_at: float = 0.0  # time.time() when it arrived (to compare with times other processes stamp)


@dataclass
class FakeWebhook:
    """Records every request. `fail_next` requests get `fail_status` (with `retry_after` as Retry-After when
    set); `refuse_status` answers every request with that status; `hang_next` requests get no answer (until
    the server stops).

    A deduplicating receiver: `handled` maps each id (Idempotency-Key) to its first accepted body, and
    `duplicates` counts accepted requests whose id was already handled.
    """

    fail_next: int = 0
    fail_status: int = 500
    retry_after: Optional[str] = None
    refuse_status: Optional[int] = None
    hang_next: int = 0
    requests: list[Received] = field(default_factory=list)
    handled: dict[str, Any] = field(default_factory=dict)
    duplicates: int = 0
    port: int = 0
    _released: asyncio.Event = field(default_factory=asyncio.Event)

    def url(self, kind: str = "hook") -> str:
        """A webhook URL of the kind `hook` (plain JSON), `slack` or `discord`, with token-like path parts."""
        paths = {"hook": "/hook/alerts?key=s3cr3t-key", "slack": "/services/T0AAAAAAA/B0BBBBBBB/XXXXXXXXXXXXXXXXXXXXXXXX",
                 "discord": "/api/webhooks/1234567890123456789/AbCdEfGhIjKlMnOpQrStUvWxYz0123456789"}
        return f"http://127.0.0.1:{self.port}{paths[kind]}"

    def release(self) -> None:
        """Answers the requests held by `hang_next` (with 503); call it in the server's loop."""
        self._released.set()

    def ids(self) -> list[str]:
        return [r.headers.get("Idempotency-Key", "") for r in self.requests]

    async def _answer(self, request: web.Request, kind: str) -> web.Response:
        raw = await request.text()
        try:
            body: Any = json.loads(raw)
        except ValueError:
            body = raw
        received = Received(request.path_qs, dict(request.headers), body, 0, time.monotonic(), time.time())
        self.requests.append(received)
        if self.hang_next > 0:
            self.hang_next -= 1
            await self._released.wait()
            received.status = 503
            return web.Response(status=503, text="stopped")
        received.status, response = self._fault(kind)
        if response is None:
            received.status, response = self._success(kind, body, request.headers.get("Idempotency-Key"))
        return response

    def _fault(self, kind: str) -> tuple[int, Optional[web.Response]]:
        if self.refuse_status is not None:
            return self.refuse_status, self._error(kind, self.refuse_status)
        if self.fail_next > 0:
            self.fail_next -= 1
            return self.fail_status, self._error(kind, self.fail_status)
        return 0, None

    def _error(self, kind: str, status: int) -> web.Response:
        headers = {"Retry-After": self.retry_after} if self.retry_after is not None else {}
        if kind == "discord":
            if status == 429:
                body = {"message": "You are being rate limited.", "retry_after": float(self.retry_after or 1),
                        "global": False}
            else:
                body = {"message": "Unknown Webhook", "code": 10015} if status == 404 else {"message": "Server error"}
            return web.json_response(body, status=status, headers=headers)
        if kind == "slack":
            text = {400: "invalid_payload", 403: "invalid_token", 404: "no_service", 410: "channel_is_archived",
                    429: "rate_limited"}.get(status, "internal_error")
            return web.Response(status=status, text=text, headers=headers)
        return web.json_response({"error": f"HTTP {status}"}, status=status, headers=headers)

    def _success(self, kind: str, body: Any, key: Optional[str]) -> tuple[int, web.Response]:
        if kind == "slack" and not (isinstance(body, dict) and body.get("text")):
            return 400, web.Response(status=400, text="invalid_payload")
        if kind == "discord" and not (isinstance(body, dict) and body.get("content")):
            return 400, web.json_response({"message": "Cannot send an empty message", "code": 50006}, status=400)
        key = key or (body.get("id") if isinstance(body, dict) else None)
        if key in self.handled:
            self.duplicates += 1
        else:
            self.handled[key] = body
        if kind == "discord":
            return 204, web.Response(status=204)
        if kind == "slack":
            return 200, web.Response(status=200, text="ok")
        return 200, web.json_response({"ok": True})

    async def slack(self, request: web.Request) -> web.Response:
        return await self._answer(request, "slack")

    async def discord(self, request: web.Request) -> web.Response:
        return await self._answer(request, "discord")

    async def hook(self, request: web.Request) -> web.Response:
        return await self._answer(request, "hook")


class FakeWebhookServer(ServedInThread):
    """Runs a FakeWebhook on 127.0.0.1 in a thread of its own (`with FakeWebhookServer() as hook:`)."""

    def __init__(self, fake: Optional[FakeWebhook] = None):
        super().__init__(fake or FakeWebhook())

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/services/{path:.*}", self.fake.slack)
        app.router.add_post("/api/webhooks/{id}/{token}", self.fake.discord)
        app.router.add_post("/hook/{path:.*}", self.fake.hook)

    async def on_close(self) -> None:
        self.fake.release()  # a hanging answer returns, so the shutdown is quick
