"""Requires MongoDB and Chromium: `streamlit run dashboard/app.py` driven by headless Chromium, both tabs, downloads,
screenshots."""

import csv
import datetime as dt
import io
import os
import re
import struct
import uuid
from pathlib import Path

import pytest
from playwright.sync_api import expect
from pymongo import MongoClient

from cryptoapp import schema
from cryptoapp.forecasts.documents import score_documents
from cryptoapp.forecasts.online import CoinForecaster
from tests.e2e import seeding
from tests.e2e.browser import ARTIFACTS, WIDTH, assert_no_exception, dashboard_server
from tests.unit.test_forecasts import bars as forecast_bars
from tests.unit.test_forecasts import sine

pytestmark = pytest.mark.e2e

# Screenshots land in .local/artifacts/ (a test run leaves the tree clean); `make screenshots` writes docs/img/.
SCREENSHOTS = Path(os.environ.get("CRYPTOAPP_SCREENSHOTS") or ARTIFACTS)


def forecast_scores() -> list[dict]:
    """BTC's scores as the worker stores them after 150 minutes: each model too few points to be judged yet."""
    forecaster = CoinForecaster("BTC", horizons=(5,))
    for bar in forecast_bars(sine(150)):
        forecaster.update(bar)
    return score_documents(forecaster.score_rows())


@pytest.fixture(scope="module")
def market_db(services):
    """Two days of five coins (5-minute backfill, an hour without data, live ticks) and two hours of an exchange's
    BTC quotes (a minute apart) and of its candles made from trades, in a database of its own; the views built from them, the archive dropped (the pages never read it)."""
    name = f"test-{uuid.uuid4().hex[:10]}"
    client = MongoClient(services["mongo_uri"], tz_aware=True, serverSelectionTimeoutMS=5000)
    now = dt.datetime.now(dt.timezone.utc)
    market = seeding.market(now)
    # The exchange's quotes a minute apart: a stream seeded once is stale once its refresh (5 s would make it 30 s,
    # the floor) has passed, and the page opens some 20 s after `now`; a minute apart it is fresh for 65 s.
    quotes = seeding.exchange(now, step_s=60, price=seeding.last(market, "BTC"))
    seeding.seed_views(client[name], services["mongo_uri"], market + quotes)
    # The exchange series' candles made from its trades, as a worker with CRYPTO_TRADES makes them.
    seeding.trade_candles(client[name], now, price=seeding.last(market, "BTC"))
    client[name].drop_collection(schema.PRICES)
    client[name][schema.FORECAST_SCORES].insert_many(forecast_scores())
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
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / name), full_page=True)


def test_realtime_tab_shows_every_coin_bid_ask_and_live_charts(dashboard, page):
    page.goto(dashboard)
    expect(page.get_by_test_id("stMetric")).to_have_count(5, timeout=60_000)
    expect(page.locator("[data-testid='stPlotlyChart'] .main-svg").first).to_be_visible(timeout=30_000)
    for coin in seeding.COINS:
        expect(page.get_by_test_id("stMetricLabel").filter(has_text=coin)).to_have_count(1)
    expect(page.get_by_text("Volume 24 h:").first).to_be_visible()
    btc = page.get_by_test_id("stColumn").filter(has=page.get_by_test_id("stMetricLabel").filter(has_text="BTC")).first
    expect(btc.get_by_text("binanceus (USDT): last")).to_be_visible()
    expect(btc.get_by_text(re.compile(r"^Bid "))).to_contain_text("USDT · Ask ")
    expect(btc.get_by_text(re.compile(r"^Spread "))).to_contain_text(" bps)")
    expect(page.get_by_text(re.compile(r"^Bid "))).to_have_count(1)  # CoinGecko gives none: no made-up quotes
    expect(page.get_by_text("Price, last 24 h (UTC)")).to_be_visible()
    expect(page.get_by_text("BTC · binanceus (USDT)").first).to_be_visible()  # its own line, beside CoinGecko's
    expect(page.get_by_text("stale", exact=True)).to_have_count(0)  # the badge, not the footnote
    assert_no_exception(page)
    screenshot(page, "realtime.png")
    btc.screenshot(path=str(SCREENSHOTS / "realtime-bid-ask.png"))

    # The live panel refreshes itself (DASHBOARD_REFRESH=5): the tick's age moves on without a reload.
    age = page.get_by_text("updated ").first
    before = age.inner_text()
    expect(age).not_to_have_text(before, timeout=20_000)
    assert_no_exception(page)


def test_history_tab_draws_candlesticks_with_indicators_and_exports_what_it_shows(dashboard, page):
    page.goto(f"{dashboard}/?tab=History")
    expect(page.get_by_text("BTC · CoinGecko · 5m bars")).to_be_visible(timeout=60_000)
    expect(page.get_by_text("Resolution: auto → 5m bars: candlesticks need bars")).to_be_visible()
    # RSI and MACD added the way a user does: typed into the indicator picker
    picker = page.get_by_test_id("stMultiSelect")
    for name in ("RSI", "MACD"):
        picker.locator("input").fill(name)
        picker.locator("input").press("Enter")
    picker.locator("input").press("Escape")
    expect(page.get_by_text("MACD 12/26/9 signal")).to_be_visible(timeout=30_000)
    expect(page.get_by_role("listbox")).to_have_count(0)
    for label in ("CoinGecko backfill (history)", "CoinGecko (live)", "SMA 20", "RSI 14", "no data (gap)",
                  "24 h volume at bar close"):
        expect(page.get_by_text(label).first).to_be_visible()
    expect(page.get_by_text("bars shown (made of")).to_be_visible()
    assert_no_exception(page)
    screenshot(page, "history.png")

    with page.expect_download(timeout=60_000) as download:
        page.get_by_role("button", name="Chart as PNG").click()
    png = Path(download.value.path()).read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and png[12:16] == b"IHDR"
    assert struct.unpack(">II", png[16:24]) == (1400, 900)
    assert download.value.suggested_filename == "BTC-5m-24h.png"

    with page.expect_download(timeout=30_000) as download:
        page.get_by_role("button", name="Data as CSV").click()
    rows = list(csv.DictReader(io.StringIO(Path(download.value.path()).read_text())))
    shown = int(re.search(r"([\d,]+) bars shown", page.get_by_text("bars shown (made of").inner_text())[1]
                .replace(",", ""))
    assert len(rows) == shown and {"open", "close", "sources", "SMA 20", "RSI 14", "MACD 12/26/9"} <= set(rows[0])
    assert rows[-1]["resolution"] == "5m" and rows[-1]["sources"] == "coingecko"


def test_an_exchange_series_draws_its_trade_candles_with_their_own_volume_and_vwap(dashboard, page):
    page.goto(f"{dashboard}/?tab=History&coin=BTC&hours=2")
    expect(page.get_by_text("BTC · CoinGecko")).to_be_visible(timeout=60_000)
    page.get_by_test_id("stSelectbox").filter(has_text="Source").click()
    page.get_by_role("option", name="binanceus (USDT)").click()
    expect(page.get_by_text("BTC · binanceus (USDT)").first).to_be_visible(timeout=30_000)
    for label in ("volume per bar (from trades)", "VWAP (per bar)"):
        expect(page.get_by_text(label).first).to_be_visible()
    expect(page.get_by_text("24 h volume at bar close")).to_have_count(0)  # the ticker's rolling figure is not drawn
    expect(page.get_by_text(re.compile(r"\d+ bars shown \(made of [\d,]+ trades\)"))).to_be_visible()
    expect(page.get_by_text("volume: what was traded in each bar")).to_be_visible()
    assert_no_exception(page)
    screenshot(page, "history-trades.png")


# --- the history tab as a person first sees it ------------------------------------------------------------------

def history_chart(page):
    return page.get_by_test_id("stPlotlyChart").filter(has=page.locator(".main-svg")).first


def window(page):
    """The number shown on the window slider's thumb."""
    return page.get_by_test_id("stSlider").get_by_test_id("stSliderThumbValue")


def test_the_history_chart_is_above_the_fold_and_the_forecast_verdict_one_line_under_it(dashboard, page):
    page.set_viewport_size({"width": WIDTH, "height": 900})
    page.goto(f"{dashboard}/?tab=History")
    expect(page.get_by_text("BTC · CoinGecko · 5m bars")).to_be_visible(timeout=60_000)
    chart = history_chart(page).bounding_box()
    assert chart["y"] < 900 - 300, chart  # the chart starts well inside the first screen, its candles with it
    verdict = page.get_by_text("Forecasts of BTC are not judged yet (140 of 200 scored points), so none is drawn.")
    expect(verdict).to_be_visible()
    line = verdict.bounding_box()
    assert line["y"] >= chart["y"] + chart["height"] - 1 and line["height"] < 32, (chart, line)  # under it, one line
    expander = page.get_by_test_id("stExpander").filter(has_text="Forecast scores")
    expect(expander.get_by_test_id("stDataFrame")).not_to_be_visible()  # the table waits in a closed expander
    expander.get_by_text("Forecast scores").click()
    expect(expander.get_by_test_id("stDataFrame")).to_be_visible()
    for label in ("up bar: close above open", "down bar: close below open", "← one tick a bar (dots) · full bars →"):
        expect(page.get_by_text(label).first).to_be_visible()
    # The pointer over the newest candles: a crosshair and the bar's open, high, low and close in dollars and cents.
    price_panel = page.locator(".js-plotly-plot .nsewdrag").first.bounding_box()
    page.mouse.move(price_panel["x"] + price_panel["width"] * 0.95, price_panel["y"] + price_panel["height"] / 2)
    expect(page.locator(".hoverlayer")).to_contain_text(re.compile(
        r"open: \$[\d,]+\.\d\dhigh: \$[\d,]+\.\d\dlow: \$[\d,]+\.\d\dclose: \$[\d,]+\.\d\d"))
    expect(page.locator(".js-plotly-plot .spikeline").first).to_be_attached()
    assert_no_exception(page)


def test_a_link_restores_the_view_and_a_bad_link_opens_the_default_one(dashboard, page):
    page.goto(f"{dashboard}/?tab=History&coin=ETH&hours=6&resolution=1m&tz=Asia/Tokyo")
    expect(page.get_by_text("ETH · CoinGecko · 1m bars")).to_be_visible(timeout=60_000)
    expect(window(page)).to_have_text("6")
    for label, value in (("Coin", "ETH"), ("Resolution", "1m"), ("Time zone", "Asia/Tokyo")):
        expect(page.get_by_role("combobox", name=label)).to_have_value(value)
    # The time axis is Tokyo's wall time: the window ends now, nine hours ahead of UTC.
    end = page.evaluate("document.querySelector('.js-plotly-plot')._fullLayout.xaxis.range[1]")
    shown = dt.datetime.fromisoformat(end[:19])
    tokyo_now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None) + dt.timedelta(hours=9)
    assert abs(shown - tokyo_now) < dt.timedelta(minutes=10), (end, tokyo_now)
    assert_no_exception(page)

    page.goto(f"{dashboard}/?tab=History&coin=NOPE&hours=abc&resolution=7s&tz=Mars/Base")
    expect(page.get_by_text("BTC · CoinGecko · 5m bars")).to_be_visible(timeout=60_000)
    expect(window(page)).to_have_text("24")
    expect(page.get_by_role("combobox", name="Time zone")).to_have_value("UTC")
    assert "coin=" not in page.url and "tz=" not in page.url
    assert_no_exception(page)


def test_range_buttons_change_the_window_and_the_link(dashboard, page):
    page.goto(f"{dashboard}/?tab=History")
    expect(page.get_by_text("BTC · CoinGecko · 5m bars")).to_be_visible(timeout=60_000)
    page.get_by_role("button", name="7 D").click()
    expect(page.get_by_text("BTC · CoinGecko · 1h bars")).to_be_visible(timeout=30_000)
    expect(window(page)).to_have_text("168")
    expect(page.get_by_text("draws 168 h in at most 300 candles")).to_be_visible()
    expect(page).to_have_url(re.compile(r"[?&]hours=168(&|$)"))
    page.get_by_role("button", name="1 H").click()
    expect(page.get_by_text("BTC · CoinGecko · 1m bars")).to_be_visible(timeout=30_000)
    expect(window(page)).to_have_text("1")
    expect(page).to_have_url(re.compile(r"[?&]hours=1(&|$)"))
    assert_no_exception(page)
