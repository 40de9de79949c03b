"""Requires MongoDB and Chromium: `streamlit run dashboard/app.py` driven by headless Chromium, both tabs, screenshots."""

import datetime as dt
import struct
import uuid
from pathlib import Path

import pytest
from playwright.sync_api import expect
from pymongo import MongoClient

from tests.e2e import seeding
from tests.e2e.browser import ARTIFACTS, WIDTH, assert_no_exception, dashboard_server

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def market_db(services):
    """Two days of five coins (5-minute backfill, an hour without data, live ticks) in a database of its own."""
    name = f"test-{uuid.uuid4().hex[:10]}"
    client = MongoClient(services["mongo_uri"], tz_aware=True, serverSelectionTimeoutMS=5000)
    seeding.store(client[name], seeding.market(dt.datetime.now(dt.timezone.utc)))
    yield services["mongo_uri"], name
    client.drop_database(name)
    client.close()


@pytest.fixture(scope="module")
def dashboard(market_db):
    """`streamlit run dashboard/app.py` on a free port, as `make run` starts it, reading the seeded database."""
    uri, name = market_db
    with dashboard_server({"MONGO_URI": uri, "MONGO_DB": name, "CRYPTO_INTERVAL": "60", "DASHBOARD_REFRESH": "5"},
                          "streamlit-e2e.log") as url:
        yield url


def screenshot(page, name: str) -> None:
    """The whole page: Streamlit scrolls inside its main block, so the viewport grows to fit it first."""
    height = page.evaluate("document.querySelector('[data-testid=\"stMain\"]').scrollHeight")
    page.set_viewport_size({"width": WIDTH, "height": min(max(height, 800), 4000)})
    page.screenshot(path=str(ARTIFACTS / name), full_page=True)


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
    expect(page.get_by_text("no data (gap)")).to_be_visible()
    expect(page.get_by_text("points shown")).to_be_visible()
    assert_no_exception(page)
    screenshot(page, "history.png")

    with page.expect_download(timeout=60_000) as download:
        page.get_by_role("button", name="Chart as PNG").click()
    png = Path(download.value.path()).read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and png[12:16] == b"IHDR"
    assert struct.unpack(">II", png[16:24]) == (1400, 700)
    assert download.value.suggested_filename == "BTC-Price-24h.png"
