"""Requires the running MongoDB server: the dashboard (AppTest, no browser) on views the product built from stored
ticks (`cryptoapp candles rebuild`'s function), most of them with the archive dropped afterwards."""

import base64
import datetime as dt
import json
import time

import numpy as np
import pandas as pd
import pytest
from pymongo import MongoClient

from cryptoapp import schema
from dashboard import cache, data, formatting, frames
from tests.e2e import seeding
from tests.e2e.seeding import tick
from tests.support.pages import app_page

pytestmark = pytest.mark.integration

UTC = dt.timezone.utc
INTERVAL_S = 300  # the shared database's live ticks are a minute apart: nothing in it turns stale during the module


def now():
    return dt.datetime.now(UTC)


@pytest.fixture(scope="module")
def mongo(services):
    client = MongoClient(services["mongo_uri"], tz_aware=True, serverSelectionTimeoutMS=5000)
    yield services["mongo_uri"], client
    client.close()


@pytest.fixture(scope="module")
def market(mongo):
    """One database for the module: 20 h of five coins (5-minute backfill, an hour without data, 5 h of live ticks a
    minute apart) and 2 h of an exchange's BTC quotes, the views built from them, then the archive DROPPED: every page
    below is read from the views alone."""
    uri, client = mongo
    name = f"test-dash-{int(time.time() * 1000) % 10**10}"
    t = now()
    docs = seeding.market(t, backfill_hours=20, gap_hours=1, live_hours=5) + seeding.exchange(t, hours=2, step_s=5)
    seeding.seed_views(client[name], uri, docs)
    client[name].drop_collection(schema.PRICES)
    yield name, docs
    client.drop_database(name)


@pytest.fixture
def env(monkeypatch, mongo):
    uri, _ = mongo

    def use(name, interval=INTERVAL_S):
        monkeypatch.setenv("MONGO_URI", uri)
        monkeypatch.setenv("MONGO_DB", name)
        monkeypatch.setenv("CRYPTO_INTERVAL", str(interval))
        monkeypatch.delenv("DASHBOARD_REFRESH", raising=False)
    return use


@pytest.fixture
def market_docs(market, env):
    """The module's database, read by the app: its ticks (their views stored, the archive dropped)."""
    name, docs = market
    env(name)
    return docs


@pytest.fixture
def own_db(mongo, unique_name, env):
    """A database of this test's own, dropped afterwards; the app reads it."""
    uri, client = mongo
    env(unique_name, interval=60)
    yield client[unique_name]
    client.drop_database(unique_name)


def _values(v):
    """A trace's array as a list: plotly sends numbers as base64 typed arrays."""
    if isinstance(v, dict) and "bdata" in v:
        return np.frombuffer(base64.b64decode(v["bdata"]), dtype=np.dtype(v["dtype"])).tolist()
    return list(v or [])


def figure(at, prefix):
    specs = [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")]
    return next(spec for spec in specs if spec["layout"].get("uirevision", "").startswith(prefix))


def traces(at, prefix):
    """name -> the trace's arrays (x, y, open, close, ...), for the chart whose uirevision starts with `prefix`."""
    out = {}
    for t in figure(at, prefix)["data"]:
        out[t.get("name")] = {k: _values(t.get(k)) for k in ("x", "y", "open", "high", "low", "close")} | \
            {"type": t.get("type"), "yaxis": t.get("yaxis", "y")}
    return out


def x_range(at, prefix):
    return [pd.Timestamp(x).to_pydatetime() for x in figure(at, prefix)["layout"]["xaxis"]["range"]]


def resolution_line(at) -> str:
    """The history tab's sentence on the resolution drawn."""
    return next(c.value for c in at.caption if c.value.startswith("Resolution:"))


def newest(docs, series):
    return max((d for d in docs if schema.series_id(d["sensor_id"], d["source"]) == series),
               key=lambda d: d["timestamp"])


# --- one shared database, its archive dropped ------------------------------------------------------------------

def test_the_archive_is_gone_and_the_live_tab_shows_every_series_newest_values(market, mongo, env):
    name, docs = market
    assert schema.PRICES not in mongo[1][name].list_collection_names()
    env(name)
    at = app_page()
    expected = {c: newest(docs, c) for c in seeding.COINS}
    assert [(m.label, m.value) for m in at.metric] == [(c, formatting.price(d["value"])) for c, d in expected.items()]
    quote = newest(docs, "BTC_binanceus")
    btc = [m.value for m in at.markdown if "Pipeline:" not in m.value][:5]
    assert btc == [
        f"{formatting.change(expected['BTC']['change_24h_pct'])} &nbsp;24 h",
        f"Volume 24 h: **{formatting.money(expected['BTC']['volume_24h'])}**",
        f"**binanceus (USDT)**: last **{formatting.price(quote['value'], 'usdt')}**",
        f"Bid **{formatting.price(quote['bid_price'], 'usdt')}** · Ask **{formatting.price(quote['ask_price'], 'usdt')}**",
        f"Spread **{formatting.spread(quote['ask_price'] - quote['bid_price'], (quote['ask_price'] - quote['bid_price']) / ((quote['ask_price'] + quote['bid_price']) / 2) * 1e4, 'usdt')}**",
    ]
    updated = [c.value for c in at.caption if c.value.startswith("updated")]
    assert len(updated) == 6 and not any("stale" in u or "simulated" in u for u in updated)
    # each card's line: its own series' prices of the chart's window, ending with the newest
    spark = [list(m.proto.chart_data) for m in at.metric]
    assert [s[-1] for s in spark] == [expected[c]["value"] for c in seeding.COINS]
    assert all(1 < len(s) <= frames.SPARKLINE_POINTS for s in spark)
    assert updated[0].endswith("price, change, volume: CoinGecko")
    assert updated[1].endswith("last, bid, ask: binanceus (USDT)")
    assert not at.error and not at.warning

    live = traces(at, "live-prices")
    # CoinGecko's and the exchange's BTC are two lines in one panel, each with every tick of its series
    assert live["BTC · CoinGecko"]["yaxis"] == live["BTC · binanceus (USDT)"]["yaxis"] == "y"
    counts = {s: sum(1 for d in docs if schema.series_id(d["sensor_id"], d["source"]) == s) for s in ("BTC", "BTC_binanceus")}
    assert len([y for y in live["BTC · CoinGecko"]["y"] if y is not None]) == counts["BTC"]
    assert [y for y in live["BTC · binanceus (USDT)"]["y"] if y is not None][-1] == quote["value"]
    assert len([y for y in live["BTC · binanceus (USDT)"]["y"] if y is not None]) == counts["BTC_binanceus"]
    volume = figure(at, "live-volume")["data"][0]
    assert volume["y"][::-1] == ["BTC", "BTC · binanceus (USDT)", "ETH", "BNB", "USDT", "USDC"]


def test_the_history_tab_draws_candles_volume_and_indicators_from_the_views(market_docs):
    docs = market_docs
    at = app_page("History")
    assert resolution_line(at).startswith("Resolution: auto → 5m bars: candlesticks need bars")
    chart = traces(at, "history-BTC")
    candles = {n: t for n, t in chart.items() if t["type"] == "candlestick"}
    assert set(candles) == {"CoinGecko backfill (history)", "CoinGecko (live)"}
    btc = sorted((d for d in docs if d["sensor_id"] == "BTC" and d["source"] != "binanceus"),
                 key=lambda d: d["timestamp"])
    starts = sorted({schema.bar_start(d["timestamp"], "5m") for d in btc})
    assert sum(len(t["x"]) for t in candles.values()) == len(starts)
    assert candles["CoinGecko (live)"]["close"][-1] == btc[-1]["value"]  # the newest bar closes at the newest tick
    last_bar = [d["value"] for d in btc if schema.bar_start(d["timestamp"], "5m") == starts[-1]]
    assert candles["CoinGecko (live)"]["high"][-1] == max(last_bar)
    assert candles["CoinGecko (live)"]["low"][-1] == min(last_bar)
    assert {"SMA 20", "Bollinger 20, 2σ upper", "Bollinger 20, 2σ lower"} <= set(chart)
    volume = next(t for n, t in chart.items() if n.startswith("24 h volume at bar close"))
    assert volume["yaxis"] == "y2"
    assert any("not the volume traded in the bar" in c.value for c in at.caption)
    # 20 h of data in a 24 h window: the axis starts near the data, not 4 empty hours earlier
    lo, hi = x_range(at, "history-BTC")
    assert lo > now() - dt.timedelta(hours=22) and hi > now() - dt.timedelta(minutes=5)
    assert len(at.info) == 1 and at.info[0].value.startswith("The window starts ")  # and the page says so
    assert f"the 5m view of BTC · CoinGecko holds data from {starts[0]:%d %b %H:%M} UTC on" in at.info[0].value


def test_rsi_and_macd_in_panels_and_a_line_of_raw_ticks(market_docs):
    docs = market_docs
    at = app_page("History")
    at.multiselect(key="history_indicators").set_value(["RSI", "MACD"]).run()
    chart = traces(at, "history-BTC")
    assert chart["RSI 14"]["yaxis"] == "y3" and chart["MACD 12/26/9"]["yaxis"] == "y4"
    assert all(0 <= v <= 100 for v in chart["RSI 14"]["y"] if v is not None and v == v)
    at.radio(key="history_mode").set_value("Line").run()
    ticks = sum(1 for d in docs if d["sensor_id"] == "BTC" and d["source"] != "binanceus")
    assert resolution_line(at) == (f"Resolution: auto → raw ticks: the {ticks:,} ticks of the last 24 h fit in one "
                                   "chart (at most 2,016 points).")
    chart = traces(at, "history-BTC")
    assert len([y for y in chart["CoinGecko (live)"]["y"] if y is not None]) == 300  # 5 h a minute apart
    assert chart["CoinGecko backfill (5m points)"]["type"] in ("scatter", "scattergl")


def test_the_source_filter_shows_the_exchange_series_alone(market_docs):
    docs = market_docs
    at = app_page("History")
    at.selectbox(key="history_source_BTC").set_value("BTC_binanceus").run()
    spec = figure(at, "history-BTC")
    assert spec["layout"]["title"]["text"] == "BTC · binanceus (USDT) · 5m bars"
    chart = traces(at, "history-BTC")
    candles = [t for t in chart.values() if t["type"] == "candlestick"]
    quotes = [d for d in docs if d["source"] == "binanceus"]
    assert len(candles) == 1 and len(candles[0]["x"]) == len({schema.bar_start(d["timestamp"], "5m") for d in quotes})
    assert candles[0]["close"][-1] == newest(docs, "BTC_binanceus")["value"]
    assert spec["layout"]["yaxis"]["ticksuffix"] == " USDT"


def test_a_chosen_resolution_and_a_window_past_what_the_view_holds(market_docs):
    at = app_page("History")
    at.selectbox(key="resolution").set_value("1m").run()
    at.slider(key="hours").set_value(168).run()
    assert resolution_line(at) == "Resolution: 1m bars (chosen)."
    assert "the 1m view of BTC · CoinGecko holds data from" in at.info[0].value
    assert at.info[0].value.endswith("A coarser resolution reaches further back.")
    assert {"Chart as PNG", "Data as CSV"} <= {b.proto.label for b in at.get("download_button")}


# --- databases of their own -------------------------------------------------------------------------------------

def test_stale_series_are_flagged_even_when_silent_for_longer_than_a_day(own_db, mongo):
    t = now()
    seeding.seed_views(own_db, mongo[0], [
        tick("BTC", t - dt.timedelta(minutes=10), 81000.0, change_24h_pct=0.5),
        tick("ETH", t - dt.timedelta(seconds=20), 2900.0, change_24h_pct=0.5),
        tick("BNB", t - dt.timedelta(hours=30), 850.0, change_24h_pct=0.5)])
    at = app_page()
    updated = {m.label: c.value for m, c in zip(at.metric, [c for c in at.caption if c.value.startswith("updated")])}
    assert updated["BTC"] == "updated 10 min ago · price, change, volume: CoinGecko :red-badge[stale]"
    assert "stale" not in updated["ETH"]
    assert updated["BNB"].startswith("updated 30 h ago") and updated["BNB"].endswith(":red-badge[stale]")


def test_simulated_ticks_are_labelled_as_simulated(own_db, mongo):
    t = now()
    seeding.seed_views(own_db, mongo[0], [
        tick("BTC", t - dt.timedelta(seconds=5), 87000.0, source=schema.SIMULATED, volume_24h=6e10, change_24h_pct=0.1),
        tick("ETH", t - dt.timedelta(seconds=5), 2900.0, volume_24h=2e10, change_24h_pct=0.1)])
    at = app_page()
    assert "Simulated data" in at.warning[0].value
    updated = [c.value for c in at.caption if c.value.startswith("updated")]
    assert updated[0].endswith("price, change, volume: :orange-badge[simulated data]")  # said once
    assert "simulated" not in updated[1]
    assert figure(at, "live-volume")["data"][0]["y"] == ["ETH", "BTC (simulated)"]


def test_a_minute_of_prices_fills_the_charts_and_draws_ticks_until_there_are_bars(own_db, mongo):
    """A fresh `make demo`: one minute of simulated ticks. The charts' axes span that minute, not 24 hours."""
    t = now()
    seeding.seed_views(own_db, mongo[0], [
        tick("BTC", t - dt.timedelta(seconds=60 - 2 * i), 87000.0 + i, source=schema.SIMULATED, volume_24h=6e10)
        for i in range(30)], grace_s=5)
    at = app_page()
    lo, hi = x_range(at, "live-prices")
    assert hi - lo < dt.timedelta(minutes=3)
    at = app_page("History")
    assert resolution_line(at).startswith("Resolution: auto → raw ticks, drawn as a line: the window has")
    assert "the tick view of BTC · simulated holds data from" in at.info[0].value
    spec = figure(at, "history-BTC")
    lo, hi = x_range(at, "history-BTC")
    assert hi - lo < dt.timedelta(minutes=3)
    assert spec["layout"]["title"]["text"] == "BTC · simulated · ticks"  # said once
    assert not [s for s in spec["layout"].get("shapes", []) if s["type"] == "rect"]  # no grey "no data" across it


def test_an_archive_without_views_says_the_views_are_missing_and_how_they_come(own_db):
    seeding.store(own_db, [tick("BTC", now() - dt.timedelta(minutes=5), 81000.0)])  # ticks, no views
    for tab in (None, "History"):  # every tab that reads the views says the same
        info = app_page(tab).info[0].value
        assert "holds stored prices but not the views this page reads" in info and "No prices yet" not in info
        assert "`cryptoapp candles rebuild`" in info and "`make run`" in info


def test_an_empty_database_says_how_to_start_the_worker(own_db):
    for tab in (None, "History"):
        at = app_page(tab)
        assert "No prices yet" in at.info[0].value and "`make run`" in at.info[0].value
        assert "`make demo`" in at.info[0].value and own_db.name in at.info[0].value


def test_a_running_worker_whose_source_fails_is_shown_as_such_not_as_missing(own_db):
    from testkit.processes import Worker, free_port, wait_for

    # CoinGecko unreachable (nothing listens on the port): the worker runs and says why nothing comes.
    dead = f"http://127.0.0.1:{free_port()}/api/v3"
    worker = Worker(own_db.name, {"COINGECKO_API_URL": dead, "CRYPTO_INTERVAL": "2", "COINGECKO_TIMEOUT": "1",
                                  "MONGO_DB": own_db.name})
    try:
        worker.start()
        wait_for(lambda: any(h.get("error") for d in own_db.status.find() for h in d["sources"].values()), 60,
                 "the worker's status naming CoinGecko's error")
        at = app_page()
        line = next(m.value for m in at.markdown if "Pipeline:" in m.value)
        assert "1 worker up" in line and "CoinGecko: CoinGecko unreachable at" in line and "since" in line
        assert "the worker runs" in at.info[0].value and "`make run`" not in at.info[0].value
    finally:
        worker.stop()
    own_db.status.update_many({}, {"$set": {"heartbeat": now() - dt.timedelta(minutes=3)}})  # as if it stopped then
    cache.worker_status.clear()  # the page keeps the status 5 s; this test does not wait them out
    at = app_page()
    assert "No worker heartbeat for 3 min" in next(m.value for m in at.markdown if "Pipeline:" in m.value)
    assert "`make run`" in at.info[0].value


def test_an_empty_window_says_what_is_missing_and_how_to_start_the_worker(own_db, mongo):
    seeding.seed_views(own_db, mongo[0], [tick("BTC", now() - dt.timedelta(hours=100), 81000.0)])
    at = app_page("History")
    message = at.info[0].value
    assert message.startswith("No BTC (CoinGecko) data between") and "(the last 24 h)" in message
    assert "`make run`" in message and "`make demo`" in message and "widen the window" in message
    assert not at.get("plotly_chart")
    at.slider(key="hours").set_value(168).run()
    assert not [i for i in at.info if i.value.startswith("No BTC")] and at.get("plotly_chart")


def test_mongodb_down_is_one_clear_error_without_the_password(env, monkeypatch):
    env("unused")
    monkeypatch.setenv("MONGO_URI", "mongodb://reader:hunter2@127.0.0.1:1/?authSource=admin")
    at = app_page()
    assert len(at.error) == 1
    message = at.error[0].value
    assert message.startswith("Cannot reach MongoDB at 127.0.0.1:1") and "make services" in message
    assert "hunter2" not in message and "reader:***@127.0.0.1:1" in message
    assert not at.tabs and not at.metric  # the page stops there


def test_a_server_that_stops_is_reported_as_down_within_seconds(private_services):
    """First the pooled connection breaks, then the driver has no server to select (it marked it unknown):
    both are an outage said within seconds, not a slow answer."""
    client = data.connect(private_services.mongo_uri, query_timeout_s=30)
    try:
        data.ping(client)
        private_services.down("mongo")
        for _ in ("the connection breaks", "no server to select"):
            started = time.monotonic()
            with pytest.raises(data.DataUnavailable) as raised:
                data.load_history(client["prices-stopped"], "BTC", 24)
            assert not isinstance(raised.value, data.QueryTooSlow)
            assert time.monotonic() - started < 10
    finally:
        client.close()
        private_services.up("mongo")
