"""The dashboard served the way `make run` serves it (`streamlit run dashboard/app.py`), for tests and benchmarks."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from testkit.processes import free_port

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / ".local" / "artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


class DashboardDown(RuntimeError):
    """`streamlit run` exited, or did not answer its health check in time."""


def wait_until_healthy(proc: subprocess.Popen, url: str, log: Path, deadline_s: float = 60) -> None:
    """Poll Streamlit's health endpoint; the pause between polls is a wait on the process itself."""
    for _ in range(int(deadline_s / 0.25)):
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as answer:
                if answer.read() == b"ok":
                    return
        except OSError:
            pass
        try:
            proc.wait(timeout=0.25)
        except subprocess.TimeoutExpired:
            continue
        raise DashboardDown(f"streamlit exited with {proc.returncode}:\n{log.read_text()[-2000:]}")
    raise DashboardDown(f"streamlit did not answer at {url} within {deadline_s:g} s:\n{log.read_text()[-2000:]}")


@contextlib.contextmanager
def dashboard_server(env: dict[str, str], log_name: str) -> Iterator[str]:
    """`streamlit run dashboard/app.py` on a free port with `env` added; yields its URL, log in .local/artifacts/."""
    port = free_port()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    log = ARTIFACTS / log_name
    with log.open("w") as out:
        proc = subprocess.Popen(
            [str(Path(sys.executable).parent / "streamlit"), "run", "dashboard/app.py", "--server.port", str(port),
             "--server.address", "127.0.0.1", "--server.headless", "true", "--browser.gatherUsageStats", "false"],
            cwd=ROOT, env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(proc, url, log)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)
