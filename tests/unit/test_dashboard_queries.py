"""The dashboard's query builders and frame shaping: window bounds, filters, projection, buckets, downsampling."""

import datetime as dt

import pandas as pd
import pytest

from cryptoapp import schema
from dashboard import data

UTC = dt.timezone.utc
NOW = dt.datetime(2025, 11, 21, 12, 0, 0, 123456, tzinfo=UTC)


def test_window_ends_now_to_the_millisecond_and_spans_the_hours():
    start, end = data.time_window(24, NOW)
    assert end == dt.datetime(2025, 11, 21, 12, 0, 0, 123000, tzinfo=UTC)  # BSON dates keep ms
    assert end - start == dt.timedelta(hours=24)
    assert data.time_window(168, NOW)[0] == end - dt.timedelta(days=7)


def test_window_converts_other_time_zones_to_utc():
    cet = dt.timezone(dt.timedelta(hours=1))
    start, end = data.time_window(1, dt.datetime(2025, 11, 21, 13, 0, tzinfo=cet))
    assert (start, end) == (dt.datetime(2025, 11, 21, 11, 0, tzinfo=UTC), dt.datetime(2025, 11, 21, 12, 0, tzinfo=UTC))


@pytest.mark.parametrize("hours", [0, 0.5, 169, -1])
def test_window_outside_1_to_168_hours_is_refused(hours):
    with pytest.raises(ValueError, match="choose 1 to 168 hours"):
        data.time_window(hours, NOW)


def test_window_needs_an_aware_now():
    with pytest.raises(ValueError, match="time zone"):
        data.time_window(1, dt.datetime(2025, 11, 21, 12, 0))


def test_filter_is_one_coin_between_inclusive_bounds():
    start, end = data.time_window(6, NOW)
    assert data.window_filter("BTC", start, end) == {"sensor_id": "BTC", "timestamp": {"$gte": start, "$lte": end}}
    assert data.window_filter(["BTC", "ETH"], start, end)["sensor_id"] == {"$in": ["BTC", "ETH"]}


@pytest.mark.parametrize("ticker", ["btc", "", "BTC ", "A" * 16, "$where", "BTC|ETH", {"$ne": None}, None, 7, b"BTC"])
def test_text_that_is_not_a_ticker_never_becomes_part_of_a_query(ticker):
    start, end = data.time_window(1, NOW)
    with pytest.raises(ValueError, match="is not a ticker"):
        data.window_filter(ticker, start, end)
    with pytest.raises(ValueError, match="is not a ticker"):
        data.window_filter(["ETH", ticker], start, end)


def test_projection_reads_only_the_charted_fields():
    assert data.PROJECTION["_id"] == 0
    assert set(data.PROJECTION) - {"_id"} == {"timestamp", "sensor_id", "value", "volume_24h", "change_24h_pct",
                                               "market_cap", "bid_price", "ask_price", "bid_size", "ask_size", "source", "granularity"}
    assert "inserted_at" not in data.PROJECTION and "currency" not in data.PROJECTION


@pytest.mark.parametrize("hours, max_points, expected", [(168, 2000, 303), (24, 2000, 44), (1, 2000, 2),
                                                         (1, 3601, 1), (1, 3600, 2), (1, 100_000, 1), (168, 1, 604800)])
def test_bucket_is_the_smallest_whole_second_that_fits_the_point_budget(hours, max_points, expected):
    start, end = data.time_window(hours, NOW)
    bucket = data.bucket_seconds(start, end, max_points)
    assert bucket == expected
    assert hours * 3600 / bucket + 1 <= max(2, max_points)  # buckets touched, boundary included


def test_bucket_needs_a_point_budget():
    with pytest.raises(ValueError):
        data.bucket_seconds(*data.time_window(1, NOW), 0)


def test_bucket_pipeline_matches_first_then_groups_by_bucket_coin_and_source():
    match = data.window_filter("BTC", *data.time_window(168, NOW))
    pipeline = data.bucket_pipeline(match, 303)
    assert pipeline[0] == {"$match": match}
    group = pipeline[1]["$group"]
    millis = {"$toLong": "$timestamp"}
    assert group["_id"] == {"bucket": {"$subtract": [millis, {"$mod": [millis, 303_000]}]},
                            "sensor_id": "$sensor_id", "source": "$source"}
    assert group["timestamp"] == {"$min": "$timestamp"} and group["points"] == {"$sum": 1}
    assert all(group[field] == {"$avg": f"${field}"} for field in schema.TICK_NUMBERS)
    assert pipeline[-1] == {"$sort": {"timestamp": 1}}


def docs(n, start=NOW, step_s=60, **extra):
    return [{"timestamp": start + dt.timedelta(seconds=i * step_s), "sensor_id": "BTC", "value": 100.0 + i,
             "volume_24h": 1e9, "change_24h_pct": 1.5, "source": "coingecko", **extra} for i in range(n)]


def test_frame_keeps_nulls_as_missing_and_computes_spread_only_with_both_quotes():
    rows = [*docs(1), {**docs(1, step_s=0)[0], "timestamp": NOW + dt.timedelta(minutes=1), "value": None,
                       "volume_24h": "n/a", "bid_price": 99.5, "ask_price": 100.5},
            {**docs(1)[0], "timestamp": NOW + dt.timedelta(minutes=2), "bid_price": 99.0}]
    frame = data.frame_from_documents(rows)
    assert list(frame.columns) == list(data.COLUMNS)
    assert str(frame["timestamp"].dt.tz) == "UTC"
    assert frame["value"].isna().tolist() == [False, True, False]
    assert frame["volume_24h"].isna().tolist() == [False, True, False]  # a string is not a volume
    assert frame["spread"].tolist()[1] == 1.0 and frame["spread"].isna().tolist() == [True, False, True]
    assert frame["points"].tolist() == [1, 1, 1]


def test_frame_of_nothing_has_the_columns():
    frame = data.frame_from_documents([])
    assert frame.empty and list(frame.columns) == list(data.COLUMNS)


def test_bucket_rows_from_the_server_are_flattened():
    row = {"_id": {"bucket": 1763726400000, "sensor_id": "BTC", "source": "coingecko"}, "timestamp": NOW,
           "value": 101.5, "volume_24h": None, "change_24h_pct": 2.0, "market_cap": None, "bid_price": None,
           "ask_price": None, "granularity": None, "points": 4}
    frame = data.frame_from_documents([row])
    assert frame.loc[0, "sensor_id"] == "BTC" and frame.loc[0, "source"] == "coingecko"
    assert frame.loc[0, "points"] == 4 and frame.loc[0, "value"] == 101.5


def test_downsample_means_each_bucket_and_keeps_sources_apart():
    start = dt.datetime(2025, 11, 21, 12, 0, tzinfo=UTC)
    backfill = docs(6, start=start, step_s=300, source="coingecko-backfill", granularity="5m")
    live = docs(60, start=start + dt.timedelta(minutes=30), step_s=60)
    frame = data.frame_from_documents(backfill + live)
    rows = data.downsample(frame, 600)
    assert rows["points"].sum() == 66
    assert len(rows) == 3 + 6  # 30 min of backfill and 60 min of live ticks in 10-minute buckets
    first_live = rows[rows["source"] == "coingecko"].iloc[0]
    assert first_live["value"] == pytest.approx(sum(100.0 + i for i in range(10)) / 10)
    assert first_live["timestamp"] == pd.Timestamp(start + dt.timedelta(minutes=30))
    assert set(rows.loc[rows["source"] == "coingecko-backfill", "granularity"]) == {"5m"}
    assert rows["timestamp"].is_monotonic_increasing


def test_downsample_never_returns_more_buckets_than_the_budget():
    start, end = data.time_window(24, NOW)
    frame = data.frame_from_documents(docs(24 * 360, start=start, step_s=10))
    bucket = data.bucket_seconds(start, end, 500)
    assert len(data.downsample(frame, bucket)) <= 500
