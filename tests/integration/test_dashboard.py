"""Requires the running MongoDB server: the dashboard (AppTest, no browser) and its queries on known stored ticks."""

import datetime as dt
import json
import time
from pathlib import Path

import pytest
from pymongo import MongoClient
from streamlit.testing.v1 import AppTest

from cryptoapp import schema
from dashboard import data
from tests.e2e import seeding
from tests.e2e.seeding import tick

pytestmark = pytest.mark.integration

APP = Path(__file__).resolve().parents[2] / "dashboard" / "app.py"
UTC = dt.timezone.utc


@pytest.fixture
def db(services, unique_name, monkeypatch):
    """A database of this test's own (MONGO_DB), dropped afterwards; the app reads the same environment."""
    monkeypatch.setenv("MONGO_URI", services["mongo_uri"])
    monkeypatch.setenv("MONGO_DB", unique_name)
    monkeypatch.setenv("CRYPTO_INTERVAL", "60")
    monkeypatch.delenv("DASHBOARD_REFRESH", raising=False)
    client = MongoClient(services["mongo_uri"], tz_aware=True, serverSelectionTimeoutMS=5000)
    yield client[unique_name]
    client.drop_database(unique_name)
    client.close()


def seed(db, docs):
    assert seeding.store(db, docs) == len(docs)


def run_app(tab=None):
    at = AppTest.from_file(str(APP), default_timeout=60)
    if tab:
        at.query_params["tab"] = tab
    at.run()
    assert not at.exception, at.exception
    return at


def chart_points(at, key):
    """The points a chart of the page draws (gap breaks and legend-only traces left out)."""
    specs = [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")]
    traces = next(spec for spec in specs if spec["layout"].get("uirevision", "").startswith(key))["data"]
    return [(x, y) for t in traces if "moving average" not in (t.get("name") or "")
            for x, y in zip(t.get("x") or [], t.get("y") or []) if x is not None and y is not None]


def now():
    return dt.datetime.now(UTC)


def test_cards_show_the_newest_stored_values_with_coloured_24h_change(db):
    t = now()
    seed(db, [
        tick("BTC", t - dt.timedelta(minutes=10), 80000.0, volume_24h=2.9e10, change_24h_pct=-1.0),
        tick("BTC", t - dt.timedelta(minutes=1), 81450.5, volume_24h=3.1e10, change_24h_pct=3.64, market_cap=1.3e12),
        tick("BTC", t - dt.timedelta(hours=30), 70000.0, source=schema.COINGECKO_BACKFILL, granularity="1h"),
        tick("ETH", t - dt.timedelta(hours=3), 3000.0, volume_24h=1.0e10, change_24h_pct=1.0),
        tick("ETH", t - dt.timedelta(minutes=2), 2900.25, volume_24h=1.2e10, change_24h_pct=-2.1),
        tick("USDT", t - dt.timedelta(seconds=30), 1.00021),  # the source sent no volume and no change
    ])
    at = run_app()
    assert [(m.label, m.value) for m in at.metric] == [("BTC", "$81,450.50"), ("ETH", "$2,900.25"), ("USDT", "$1.0002")]
    assert [m.value for m in at.markdown] == [
        ":green[**▲ +3.64 %**] &nbsp;24 h", "Volume 24 h: **$31.00 B**",
        ":red[**▼ −2.10 %**] &nbsp;24 h", "Volume 24 h: **$12.00 B**",
        "— &nbsp;24 h", "Volume 24 h: **—**",
    ]
    updated = [c.value for c in at.caption if c.value.startswith("updated")]
    assert len(updated) == 3 and not any("stale" in u or "simulated" in u for u in updated)
    assert not at.error and not at.warning
    assert len(chart_points(at, "live-prices")) == 5  # the ticks of the last 24 h, not the 30 h old backfill


def test_stale_coins_are_flagged_even_when_silent_for_longer_than_a_day(db):
    t = now()
    seed(db, [tick("BTC", t - dt.timedelta(minutes=10), 81000.0, change_24h_pct=0.5),
              tick("ETH", t - dt.timedelta(seconds=20), 2900.0, change_24h_pct=0.5),
              tick("BNB", t - dt.timedelta(hours=30), 850.0, change_24h_pct=0.5)])
    at = run_app()
    updated = {m.label: c.value for m, c in zip(at.metric, [c for c in at.caption if c.value.startswith("updated")])}
    assert updated["BTC"] == "updated 10 min ago :red-badge[stale]"
    assert "stale" not in updated["ETH"]
    assert updated["BNB"] == "updated 30 h ago :red-badge[stale]"


def test_simulated_ticks_are_labelled_as_simulated(db):
    t = now()
    seed(db, [tick("BTC", t - dt.timedelta(seconds=5), 87000.0, source=schema.SIMULATED, volume_24h=6e10, change_24h_pct=0.1),
              tick("ETH", t - dt.timedelta(seconds=5), 2900.0, volume_24h=2e10, change_24h_pct=0.1)])
    at = run_app()
    assert "Simulated data" in at.warning[0].value
    updated = [c.value for c in at.caption if c.value.startswith("updated")]
    assert ":orange-badge[simulated data]" in updated[0] and "simulated" not in updated[1]
    volume = next(c for c in at.get("plotly_chart") if json.loads(c.proto.spec)["layout"]["uirevision"] == "live-volume")
    assert json.loads(volume.proto.spec)["data"][0]["y"] == ["ETH", "BTC (simulated)"]


def test_an_empty_database_says_how_to_start_the_worker(db):
    for tab in (None, "History"):
        at = run_app(tab)
        assert "No prices yet" in at.info[0].value and "`make run`" in at.info[0].value
        assert "`make demo`" in at.info[0].value and db.name in at.info[0].value


def test_an_empty_window_says_what_is_missing_and_how_to_start_the_worker(db):
    seed(db, [tick("BTC", now() - dt.timedelta(hours=100), 81000.0)])
    at = run_app("History")
    message = at.info[0].value
    assert message.startswith("No BTC ticks between") and "(the last 24 h)" in message
    assert "`make run`" in message and "`make demo`" in message and "widen the window" in message
    assert not at.get("plotly_chart")
    at.slider(key="history_hours").set_value(168).run()
    assert not at.info and len(chart_points(at, "history-BTC")) == 1


def test_mongodb_down_is_one_clear_error_without_the_password(db, monkeypatch):
    monkeypatch.setenv("MONGO_URI", "mongodb://reader:hunter2@127.0.0.1:1/?authSource=admin")
    at = run_app()
    assert len(at.error) == 1
    message = at.error[0].value
    assert message.startswith("Cannot reach MongoDB at 127.0.0.1:1") and "make services" in message
    assert "hunter2" not in message and "reader:***@127.0.0.1:1" in message
    assert not at.tabs and not at.metric  # the page stops there


def test_history_returns_exactly_the_points_inside_the_window(db):
    t = now()
    inside = [t - dt.timedelta(minutes=30), t - dt.timedelta(hours=2), t - dt.timedelta(hours=23, minutes=50)]
    outside = [t - dt.timedelta(hours=24, minutes=10), t - dt.timedelta(hours=30), t + dt.timedelta(minutes=5)]
    seed(db, [tick("BTC", ts, 80000.0 + i) for i, ts in enumerate(inside + outside)]
         + [tick("ETH", t - dt.timedelta(hours=1), 2900.0)])
    frame = data.load_history(db, "BTC", 24, now=t)
    stored = sorted(seeding.tick("BTC", ts, 0)["timestamp"] for ts in inside)  # as stored: milliseconds
    assert frame["timestamp"].dt.to_pydatetime().tolist() == stored
    assert frame["sensor_id"].unique().tolist() == ["BTC"] and frame.attrs["downsampled"] is None
    assert frame.attrs["ticks"] == 3 and frame["points"].tolist() == [1, 1, 1]

    at = run_app("History")
    assert sorted(y for _, y in chart_points(at, "history-BTC")) == [80000.0, 80001.0, 80002.0]
    assert any(c.value.startswith("Source: CoinGecko (live) · 3 points shown") for c in at.caption)
    csv = next(b for b in at.get("download_button") if b.proto.label == "Data as CSV")
    assert csv.proto.url  # the shown data, as a file


def test_downsampling_caps_the_point_count_and_keeps_the_mean(db):
    t = now().replace(microsecond=0)
    raw = [tick("BTC", t - dt.timedelta(seconds=60 + 30 * i), 80000.0 + (i % 97), volume_24h=3e10) for i in range(2600)]
    seed(db, raw)
    frame = data.load_history(db, "BTC", 24, now=t)
    assert len(frame) <= data.DEFAULT_MAX_POINTS and frame.attrs["ticks"] == 2600
    assert frame.attrs["downsampled"] in ("server", "client") and frame.attrs["bucket_s"] == 44
    assert frame["points"].sum() == 2600
    assert (frame["value"] * frame["points"]).sum() == pytest.approx(sum(d["value"] for d in raw))
    assert len(data.load_history(db, "BTC", 24, now=t, max_points=100)) <= 101

    at = run_app("History")
    assert len(chart_points(at, "history-BTC")) <= data.DEFAULT_MAX_POINTS
    assert any("downsampled" in c.value and "2,600 ticks" in c.value for c in at.caption)


def test_a_query_past_its_time_limit_is_reported_as_too_slow_not_as_down(db, services):
    t = now()
    seed(db, [tick("BTC", t - dt.timedelta(seconds=10 * i), 81000.0) for i in range(5000)])  # a scan of ~0.3 s
    impatient = data.connect(services["mongo_uri"], query_timeout_s=0.001)
    patient = data.connect(services["mongo_uri"], query_timeout_s=30)
    try:
        with pytest.raises(data.QueryTooSlow):
            data.load_history(impatient[db.name], "BTC", 24, now=t)
        assert data.load_history(patient[db.name], "BTC", 24, now=t).attrs["ticks"] == 5000
    finally:
        impatient.close()
        patient.close()


def test_a_server_that_stops_is_reported_as_down_within_seconds_not_after_the_query_limit(private_services):
    """First the pooled connection breaks, then the driver has no server to select (it marked it unknown):
    both are an outage said within seconds, while a slow answer may take up to 180 s."""
    client = data.connect(private_services.mongo_uri, query_timeout_s=180)
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
