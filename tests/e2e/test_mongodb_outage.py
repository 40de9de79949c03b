"""Requires Java, FerretDB/mongod and Chromium: the dashboard says MongoDB is down, then comes back by itself (private MongoDB)."""

import datetime as dt
import time

import pytest
from playwright.sync_api import expect
from pymongo import MongoClient

from tests.e2e import seeding
from tests.e2e.browser import assert_no_exception, dashboard_server

# A drill (`make drills`): it stops and starts MongoDB twice with a browser open, about 2 min of `make test`'s 15.
pytestmark = [pytest.mark.e2e, pytest.mark.drill]

REFRESH_S = 3
UNREACHABLE = "Cannot reach MongoDB at 127.0.0.1:"


@pytest.fixture
def seeded(private_services):
    """Three hours of five coins on the private MongoDB (the one this test may stop), in a database of its own."""
    name = f"e2e-outage-{time.strftime('%H%M%S')}"
    client = MongoClient(private_services.mongo_uri, tz_aware=True, serverSelectionTimeoutMS=10000)
    seeding.seed_views(client[name], private_services.mongo_uri,
                       seeding.market(dt.datetime.now(dt.timezone.utc), backfill_hours=2, gap_hours=0, live_hours=1))
    yield name
    private_services.up("mongo")  # whatever the test did, the next one finds it running
    client.drop_database(name)
    client.close()


def test_dashboard_reports_mongodb_down_and_recovers_without_a_reload(private_services, seeded, page):
    env = {"MONGO_URI": private_services.mongo_uri, "MONGO_DB": seeded, "CRYPTO_INTERVAL": "60",
           "DASHBOARD_REFRESH": str(REFRESH_S)}
    cards = page.get_by_test_id("stMetric")
    error = page.get_by_test_id("stAlert").filter(has_text=UNREACHABLE)

    def stopped():
        private_services.down("mongo")
        # A live-panel run while MongoDB is down makes two or three queries, each waiting 3 s for a server to select:
        # on a loaded CI machine the error has come after more than 60 s.
        expect(error).to_have_count(1, timeout=90_000)

    def restarted():
        private_services.up("mongo")
        expect(cards).to_have_count(5, timeout=60_000)
        expect(error).to_have_count(0)

    private_services.down("mongo")
    with dashboard_server(env, "streamlit-outage.log") as url:
        # 1. Down when the page opens: one clear error naming the server and the fix, no cards.
        page.goto(url)
        expect(error).to_have_count(1, timeout=60_000)
        expect(error).to_contain_text("make services")
        expect(page.get_by_text(f"Trying again every {REFRESH_S} s")).to_be_visible()
        expect(cards).to_have_count(0)
        # 2. MongoDB returns: the page fills in by itself, with no reload.
        restarted()
        # 3. Down while the page is open: the live panel says so on its next refresh, the tabs stay.
        stopped()
        expect(cards).to_have_count(0)
        expect(page.get_by_role("tab", name="History")).to_be_visible()
        # 4. Back again: the cards return on the next refresh.
        restarted()
        # 5. Down, and the user opens the History tab: the page's error; back: the tab's chart by itself.
        stopped()
        page.get_by_role("tab", name="History").click()
        expect(page.get_by_text(f"Trying again every {REFRESH_S} s")).to_be_visible(timeout=60_000)
        private_services.up("mongo")
        expect(page.get_by_text("BTC · CoinGecko · 5m bars")).to_be_visible(timeout=60_000)
        expect(error).to_have_count(0)
        assert_no_exception(page)
