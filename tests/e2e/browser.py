"""Running the dashboard the way `make run` does, and what every browser test checks on its page."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import expect

from testkit.processes import free_port

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / ".local" / "artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
WIDTH = 1400


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
        pytest.fail(f"streamlit exited with {proc.returncode}:\n{log.read_text()[-2000:]}")
    pytest.fail(f"streamlit did not answer at {url} within {deadline_s:g} s:\n{log.read_text()[-2000:]}")


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


def assert_no_exception(page) -> None:
    expect(page.get_by_test_id("stException")).to_have_count(0)
    assert page.outside_requests == []
