"""Requires MongoDB and Chromium: `streamlit run dashboard/app.py` driven by headless Chromium, both tabs, screenshots."""

import datetime as dt
import os
import socket
import struct
import subprocess
import sys
import urllib.request
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import expect, sync_playwright
from pymongo import MongoClient

from tests.e2e import seeding

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / ".local" / "artifacts"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
WIDTH = 1400


@pytest.fixture(scope="module")
def market_db(services):
    """Two days of five coins (5-minute backfill, an hour without data, live ticks) in a database of its own."""
    name = f"test-{uuid.uuid4().hex[:10]}"
    client = MongoClient(services["mongo_uri"], tz_aware=True, serverSelectionTimeoutMS=5000)
    seeding.store(client[name], seeding.market(dt.datetime.now(dt.timezone.utc)))
    yield services["mongo_uri"], name
    client.drop_database(name)
    client.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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


@pytest.fixture(scope="module")
def dashboard(market_db):
    """`streamlit run dashboard/app.py` on a free port, as `make run` starts it, reading the seeded database."""
    uri, name = market_db
    port = free_port()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    log = ARTIFACTS / "streamlit-e2e.log"
    env = {**os.environ, "MONGO_URI": uri, "MONGO_DB": name, "CRYPTO_INTERVAL": "60", "DASHBOARD_REFRESH": "5"}
    with log.open("w") as out:
        proc = subprocess.Popen(
            [str(Path(sys.executable).parent / "streamlit"), "run", "dashboard/app.py", "--server.port", str(port),
             "--server.address", "127.0.0.1", "--server.headless", "true", "--browser.gatherUsageStats", "false"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
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


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser):
    """A page that refuses (and records) any request leaving the machine."""
    context = browser.new_context(viewport={"width": WIDTH, "height": 1000}, accept_downloads=True)
    page = context.new_page()
    page.outside_requests = []

    def only_loopback(route):
        if urlsplit(route.request.url).hostname in ("127.0.0.1", "localhost"):
            route.continue_()
        else:
            page.outside_requests.append(route.request.url)
            route.abort()

    page.route("**/*", only_loopback)
    yield page
    context.close()


def screenshot(page, name: str) -> None:
    """The whole page: Streamlit scrolls inside its main block, so the viewport grows to fit it first."""
    height = page.evaluate("document.querySelector('[data-testid=\"stMain\"]').scrollHeight")
    page.set_viewport_size({"width": WIDTH, "height": min(max(height, 800), 4000)})
    page.screenshot(path=str(ARTIFACTS / name), full_page=True)


def assert_no_exception(page) -> None:
    expect(page.get_by_test_id("stException")).to_have_count(0)
    assert page.outside_requests == []


def test_realtime_tab_shows_every_coin_and_live_charts(dashboard, page):
    page.goto(dashboard)
    expect(page.get_by_test_id("stMetric")).to_have_count(5, timeout=60_000)
    expect(page.locator("[data-testid='stPlotlyChart'] .main-svg").first).to_be_visible(timeout=30_000)
    for coin in seeding.COINS:
        expect(page.get_by_test_id("stMetricLabel").filter(has_text=coin)).to_have_count(1)
    expect(page.get_by_text("Volume 24 h:").first).to_be_visible()
    expect(page.get_by_text("Price, last 24 h (UTC)")).to_be_visible()
    expect(page.get_by_text("24 h volume (USD)")).to_be_visible()
    expect(page.get_by_text("stale", exact=True)).to_have_count(0)  # the badge, not the footnote
    assert_no_exception(page)
    screenshot(page, "realtime.png")

    # The live panel refreshes itself (DASHBOARD_REFRESH=5): the tick's age moves on without a reload.
    age = page.get_by_text("updated ").first
    before = age.inner_text()
    expect(age).not_to_have_text(before, timeout=20_000)
    assert_no_exception(page)


def test_history_tab_draws_backfill_and_gaps_and_exports_a_png(dashboard, page):
    page.goto(dashboard)
    page.get_by_role("tab", name="History").click()
    expect(page.get_by_text("BTC · Price (USD)")).to_be_visible(timeout=60_000)
    expect(page.get_by_text("CoinGecko backfill (5m points)")).to_be_visible()
    expect(page.get_by_text("no data (gap > 2× interval)")).to_be_visible()
    expect(page.get_by_text("points shown")).to_be_visible()
    assert_no_exception(page)
    screenshot(page, "history.png")

    with page.expect_download(timeout=60_000) as download:
        page.get_by_role("button", name="Chart as PNG").click()
    png = Path(download.value.path()).read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and png[12:16] == b"IHDR"
    assert struct.unpack(">II", png[16:24]) == (1400, 700)
    assert download.value.suggested_filename == "BTC-Price-24h.png"
