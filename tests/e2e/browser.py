"""Running the dashboard the way `make run` does, and what every browser test checks on its page."""

from __future__ import annotations

from playwright.sync_api import expect

from testkit.dashboard import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, dashboard_server  # noqa: F401 (re-exported)

# The server and the browser are the ones the benchmarks use (testkit/dashboard.py).
WIDTH = 1400


def assert_no_exception(page) -> None:
    expect(page.get_by_test_id("stException")).to_have_count(0)
    assert page.outside_requests == []
