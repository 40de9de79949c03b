"""The real worker as users start it (`cryptoapp worker -l info`, a subprocess), and waiting with a deadline."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable, Optional, TypeVar

ROOT = Path(__file__).resolve().parents[1]
LOGS = ROOT / ".local" / "logs"
CONSOLE_SCRIPT = ROOT / ".venv" / "bin" / "cryptoapp"
T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_module(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """`python -m ARGS` from the repo root, as `make` runs it; fails showing the output's end unless it exits 0."""
    run = subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return run


class _Polling:
    """Iterating calls `condition` until it returns something truthy (kept as `result`), pausing at each `yield`
    for the caller to wait; fails naming `what` after `timeout` s."""

    def __init__(self, condition: Callable[[], T], timeout: float, what: str):
        self.condition, self.timeout, self.what = condition, timeout, what
        self.result: Optional[T] = None

    def __iter__(self):
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            self.result = self.condition()
            if self.result:
                return
            yield
        raise AssertionError(f"timed out after {self.timeout:.0f} s waiting for {self.what} (last: {self.result!r})")


def wait_for(condition: Callable[[], T], timeout: float, what: str, interval: float = 0.2) -> T:
    """Polls `condition` until it returns something truthy; fails naming `what` after `timeout` s."""
    polling = _Polling(condition, timeout, what)
    for _ in polling:
        time.sleep(interval)
    return polling.result


async def async_wait_for(condition: Callable[[], T], timeout: float, what: str, interval: float = 0.05) -> T:
    """`wait_for` for async tests: polls without blocking the event loop the code under test runs on."""
    polling = _Polling(condition, timeout, what)
    for _ in polling:
        await asyncio.sleep(interval)
    return polling.result


class Worker:
    """One `cryptoapp worker` process with its own app id, topic, database and web port."""

    def __init__(self, name: str, env: dict[str, str], args: tuple[str, ...] = ()):
        self.name = name
        self.port = int(env.get("WEB_PORT") or free_port())
        self.env = {**os.environ, "CRYPTO_APP_ID": name, "CRYPTO_TOPIC": f"{name}-prices", "MONGO_DB": name,
                    "CRYPTO_DATADIR": str(ROOT / ".local" / "test-faust"), "WEB_PORT": str(self.port),
                    "PYTHONUNBUFFERED": "1",
                    # A coin list of its own: a fake CoinGecko's never lands in the user's .local/ cache.
                    "CRYPTO_COINS_CACHE": str(ROOT / ".local" / "test-faust" / f"{name}-coins.json"),
                    # History calls only where a test asks for them (tests/integration/test_backfill.py).
                    "CRYPTO_BACKFILL_HOURS": "0", **env}
        self.args = args
        self.proc: Optional[subprocess.Popen] = None
        self.starts = 0
        LOGS.mkdir(parents=True, exist_ok=True)
        self.log_path = LOGS / f"test-worker-{name}.log"

    def start(self, wait_web: bool = True) -> "Worker":
        self.starts += 1
        log = open(self.log_path, "a")
        log.write(f"\n===== start {self.starts} =====\n")
        log.flush()
        self.proc = subprocess.Popen([str(CONSOLE_SCRIPT), "worker", "-l", "info", *self.args],
                                     env=self.env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        if wait_web:
            wait_for(lambda: self._alive() and self.get("/prices/")[0] == 200, 90, f"worker {self.name}'s web server")
        return self

    def __enter__(self) -> "Worker":
        """`with Worker(...) as w:` starts it (its web server up) and stops it at the end, as a fixture's yield."""
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _alive(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"worker {self.name} exited with {self.proc.returncode}; see {self.log_path}")
        return True

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(10)

    def command(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        """`cryptoapp ARGS` as a user runs it beside this worker: its settings (database, topics, web port)."""
        return subprocess.run([str(CONSOLE_SCRIPT), *args], env=self.env, cwd=ROOT, capture_output=True, text=True,
                              timeout=timeout)

    def get(self, path: str) -> tuple[int, object]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            body = exc.read()
            try:
                return exc.code, json.loads(body or b"null")
            except ValueError:
                return exc.code, body.decode(errors="replace")
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return 0, None

    def price(self, ticker: str):
        """The value /prices/<ticker>/ serves, or None while it serves none."""
        status, body = self.get(f"/prices/{ticker}/")
        return body.get("value") if status == 200 and isinstance(body, dict) else None

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")
