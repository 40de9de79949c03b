"""Headless Chromium for the browser tests: one browser per module, a fresh page per test."""

from urllib.parse import urlsplit

import pytest
from playwright.sync_api import sync_playwright

from tests.e2e.browser import CHROMIUM, CHROMIUM_ARGS, WIDTH


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
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
