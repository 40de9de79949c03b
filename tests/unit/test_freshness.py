"""The stale rule: a series is stale when its next observation is overdue, measured per series, never sooner than
the floor."""

import datetime as dt

import pandas as pd
import pytest

from cryptoapp import metrics
from dashboard import freshness

UTC = dt.timezone.utc
NOW = dt.datetime(2026, 12, 1, 6, 0, tzinfo=UTC)


def ticks(series, ticker, source, gaps_s, end=NOW):
    """Ticks of one series ending at `end`, `gaps_s` apart (oldest gap first)."""
    times = [end]
    for gap in reversed(gaps_s):
        times.insert(0, times[0] - dt.timedelta(seconds=gap))
    return pd.DataFrame({"timestamp": pd.to_datetime(times, utc=True), "sensor_id": ticker, "series": series,
                         "value": 1.0, "source": source, "resolution": "ticks"})


def latest(*rows):
    return pd.DataFrame([{"series": s, "sensor_id": t, "source": src} for s, t, src in rows])


def test_the_demo_is_never_stale_within_the_floor_and_is_after_it():
    """CRYPTO_INTERVAL=2 and a page lagging the worker 5-7 s: 3 × 2 s flickered; the floor holds."""
    recent = ticks("BTC", "BTC", "simulated", [2.0] * 40)
    after = freshness.thresholds(latest(("BTC", "BTC", "simulated")), recent, interval_s=2, lag_s=0.4, page_s=10)
    assert after == {"BTC": freshness.FLOOR_S} == {"BTC": 30.0}
    assert not freshness.is_stale(NOW - dt.timedelta(seconds=7), NOW, after["BTC"])
    assert not freshness.is_stale(NOW - dt.timedelta(seconds=30), NOW, after["BTC"])
    assert freshness.is_stale(NOW - dt.timedelta(seconds=31), NOW, after["BTC"])


def test_coingecko_refreshing_once_a_minute_polled_every_minute_waits_its_refresh_and_a_poll():
    recent = ticks("BTC", "BTC", "coingecko", [55, 60, 62, 58, 61, 75, 60, 59, 64, 60] * 3)
    after = freshness.thresholds(latest(("BTC", "BTC", "coingecko")), recent, interval_s=60, lag_s=0.5, page_s=10)
    # the 90th percentile of the gaps (one in ten is 75 s) + one poll + the measured lag + the page's refresh
    assert after["BTC"] == pytest.approx(75 + 60 + 0.5 + 10)
    # a 2-minute gap from polling just before CoinGecko's refresh is not stale; 3 minutes is
    assert not freshness.is_stale(NOW - dt.timedelta(seconds=125), NOW, after["BTC"])
    assert freshness.is_stale(NOW - dt.timedelta(minutes=3), NOW, after["BTC"])


def test_an_old_outage_in_the_ticks_does_not_make_the_rule_lenient():
    recent = ticks("BTC", "BTC", "coingecko", [60] * 10 + [6 * 3600] + [60] * 20)
    assert freshness.source_refresh_s(recent["timestamp"]) == 60


def test_an_exchange_stream_is_not_polled_and_a_backlog_counts_as_lag():
    recent = pd.concat([ticks("BTC_binanceus", "BTC", "binanceus", [1.0] * 40),
                        ticks("BTC", "BTC", "coingecko-backfill", [300] * 40)])  # backfill is not the live source
    rows = latest(("BTC", "BTC", "coingecko"), ("BTC_binanceus", "BTC", "binanceus"))
    after = freshness.thresholds(rows, recent, interval_s=60, lag_s=0.2, page_s=10)
    assert after == {"BTC": pytest.approx(60 + 0.2 + 10), "BTC_binanceus": 30.0}
    behind = freshness.thresholds(rows, recent, interval_s=60, lag_s=120, page_s=10)
    assert behind["BTC_binanceus"] == pytest.approx(1 + 120 + 10)


def test_the_lag_is_the_slowest_running_workers_and_a_gone_worker_does_not_count():
    docs = [{"heartbeat": NOW - dt.timedelta(seconds=5), "readable_p90_s": 0.8},
            {"heartbeat": NOW - dt.timedelta(seconds=5), "readable_p90_s": None},
            {"heartbeat": NOW - dt.timedelta(minutes=10), "readable_p90_s": 300.0}]
    assert freshness.pipeline_lag_s(docs, NOW) == 0.8
    assert freshness.pipeline_lag_s([], NOW) == 0.0


def test_the_worker_measures_the_lag_on_its_newest_ticks():
    metrics.batch_written([100.0, 100.5], acked_at=101.0)
    metrics.batch_written([190.0] + [200.0] * 9, acked_at=200.2)  # the newest batch: a late tick, then 9 quick ones
    assert metrics.readable_p90_s(count=10) == pytest.approx(10.2)
    assert metrics.readable_p90_s(count=9) == pytest.approx(0.2)


def test_the_footnote_names_the_thresholds_in_force():
    assert freshness.rule_text([30.0, 30.0]) == "30 s"
    assert freshness.rule_text([30.0, 145.5]) == "30 s to 2.43 min"
