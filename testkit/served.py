"""An aiohttp application served on 127.0.0.1 from an event loop in a thread of its own, for the fakes of third-party
APIs that a worker subprocess (or synchronous test and bench code) calls."""

from __future__ import annotations

import asyncio
import threading
from typing import Any, Optional

from aiohttp import web

from testkit.processes import free_port


class ServedInThread:
    """`with Subclass(fake) as fake:` serves `routes()` on a free port (set as `fake.port`) until the block ends.

    Subclasses add their routes in `routes(app)`; `on_close()` runs in the server's loop before it shuts down
    (e.g. to release requests a fake holds unanswered, so the shutdown is quick)."""

    def __init__(self, fake: Any):
        self.fake = fake
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: Optional[web.AppRunner] = None

    def routes(self, app: web.Application) -> None:
        raise NotImplementedError

    async def on_close(self) -> None:
        """Runs in the server's loop before it shuts down."""

    def call(self, coro, timeout: float = 10):
        """Runs a coroutine in the server's loop and returns its result."""
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def __enter__(self):
        app = web.Application()
        self.routes(app)
        self.fake.port = free_port()
        self._runner = web.AppRunner(app)
        self._thread.start()
        self.call(self._start())
        return self.fake

    async def _start(self) -> None:
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.fake.port).start()

    def __exit__(self, *exc) -> None:
        self.call(self.on_close())
        self.call(self._runner.cleanup())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()
