"""Headless Chromium for the browser tests: one browser per module, a fresh page per test."""

from urllib.parse import urlsplit

import pytest
from playwright.sync_api import sync_playwright

from testkit.dashboard import ARTIFACTS
from tests.e2e.browser import CHROMIUM, CHROMIUM_ARGS, WIDTH


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A failed browser test keeps what its page showed: a screenshot in .local/artifacts/ and the page's text in the
    report (so CI's output says what the user would have seen)."""
    outcome = yield
    report = outcome.get_result()
    page = item.funcargs.get("page") if report.when == "call" and report.failed else None
    if page is None:
        return
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / f"failed-{item.name}.png"
    try:
        page.screenshot(path=str(shot), full_page=True)
        text = page.inner_text("body")
    except Exception as exc:  # a page that is gone: the test's own error says enough
        text = f"(no page to read: {exc.__class__.__name__})"
    report.sections.append(("the page when the test failed", f"{text[:3000]}\n(screenshot: {shot})"))


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
