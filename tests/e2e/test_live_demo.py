"""Requires Kafka, MongoDB and Chromium: a real worker on the simulated source (the demo, every 2 s) beside the real
page; no card is stale while it runs, and the badge comes once it stops, when the rule says (dashboard/freshness.py)."""

import time

import pytest
from playwright.sync_api import expect
from pymongo import MongoClient

from cryptoapp.schema import LATEST
from dashboard import freshness
from testkit.processes import Worker, wait_for
from tests.e2e.browser import assert_no_exception, dashboard_server

pytestmark = pytest.mark.e2e

INTERVAL_S, REFRESH_S = 2, 2
WATCHED_S = 12
COINS = 5


def newest_tick(db) -> float:
    return max(d["timestamp"] for d in db[LATEST].find({}, {"timestamp": 1})).timestamp()


def test_the_demo_is_never_stale_while_its_worker_runs_and_is_once_it_stopped(services, unique_name, page):
    client = MongoClient(services["mongo_uri"], tz_aware=True, serverSelectionTimeoutMS=5000)
    db = client[unique_name]
    worker = Worker(unique_name, {"CRYPTO_SOURCES": "simulated", "CRYPTO_INTERVAL": str(INTERVAL_S),
                                  "CRYPTO_FORECASTS": "0"})
    env = {"MONGO_URI": services["mongo_uri"], "MONGO_DB": unique_name, "CRYPTO_INTERVAL": str(INTERVAL_S),
           "DASHBOARD_REFRESH": str(REFRESH_S)}
    stale = page.get_by_text("stale", exact=True)  # the badge, not the footnote
    try:
        worker.start()
        wait_for(lambda: db[LATEST].count_documents({}) >= COINS, 90, "the worker's first prices in crypto.latest")
        with dashboard_server(env, "streamlit-live-demo.log") as url:
            page.goto(url)
            expect(page.get_by_test_id("stMetric")).to_have_count(COINS, timeout=60_000)
            # Each card draws its recent prices.
            expect(page.get_by_test_id("stMetric").locator("canvas, svg")).to_have_count(COINS, timeout=30_000)
            # Healthy for WATCHED_S: every refresh that shows a new tick (the cards' prices move; the age alone can
            # read "1 s ago" refresh after refresh) shows no stale badge.
            cards = page.get_by_test_id("stMetric")
            watched_until = time.monotonic() + WATCHED_S
            while time.monotonic() < watched_until:
                before = cards.all_inner_texts()
                wait_for(lambda: cards.all_inner_texts() != before, 15, "the cards showing the worker's next tick")
                expect(stale).to_have_count(0, timeout=1)
            expect(page.get_by_text(f"at least {freshness.FLOOR_S:g} s (now 30 s)")).to_be_visible()

            worker.stop()
            last = newest_tick(db)
            appeared = wait_for(lambda: stale.count() == COINS and time.time(), 90, "a stale badge on every card")
            # Not before the floor (the demo's refresh, poll, lag and page refresh add up to less), and within a
            # refresh or two of it.
            assert freshness.FLOOR_S <= appeared - last <= freshness.FLOOR_S + 3 * REFRESH_S + 4, appeared - last
            assert_no_exception(page)
    finally:
        worker.stop()
        client.drop_database(unique_name)
        client.close()
