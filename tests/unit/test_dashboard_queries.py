"""The dashboard's read rules without a server: window bounds, series names, frames, the resolution rule and what
the page says about it, and the CSV of what is drawn."""

import datetime as dt
import io

import pandas as pd
import pytest

from cryptoapp import schema
from dashboard import export, frames, indicators, resolution

UTC = dt.timezone.utc
NOW = dt.datetime(2025, 11, 21, 12, 0, 0, 123456, tzinfo=UTC)


def test_window_ends_now_to_the_millisecond_and_spans_the_hours():
    start, end = frames.time_window(24, NOW)
    assert end == dt.datetime(2025, 11, 21, 12, 0, 0, 123000, tzinfo=UTC)  # BSON dates keep ms
    assert end - start == dt.timedelta(hours=24)
    assert frames.time_window(168, NOW)[0] == end - dt.timedelta(days=7)


@pytest.mark.parametrize("hours", [0, 0.5, 169, -1])
def test_window_outside_1_to_168_hours_is_refused(hours):
    with pytest.raises(ValueError, match="choose 1 to 168 hours"):
        frames.time_window(hours, NOW)


def test_window_needs_an_aware_now():
    with pytest.raises(ValueError, match="time zone"):
        frames.time_window(1, dt.datetime(2025, 11, 21, 12, 0))


@pytest.mark.parametrize("series", ["btc", "", "BTC ", "A" * 16, "$where", "BTC|ETH", {"$ne": None}, None, 7,
                                    "BTC_Binance US", "BTC_"])
def test_text_that_is_not_a_series_never_reaches_a_query(series):
    with pytest.raises(ValueError, match="is not a series"):
        frames.check_series(series)


def test_series_are_tickers_or_ticker_and_source():
    assert frames.check_series("BTC") == "BTC" and frames.check_series("BTC_binanceus") == "BTC_binanceus"


def test_tick_frames_keep_nulls_missing_and_compute_the_spread_only_from_both_quotes():
    rows = [{"timestamp": NOW, "sensor_id": "BTC", "value": 100.0, "bid_price": 99.5, "ask_price": 100.5},
            {"timestamp": NOW + dt.timedelta(seconds=1), "sensor_id": "BTC", "value": None, "bid_price": 99.0},
            {"timestamp": NOW + dt.timedelta(seconds=2), "sensor_id": "BTC", "value": 101.0, "volume_24h": "n/a"}]
    frame = frames.tick_frame(rows)
    assert frame["spread"].tolist()[0] == 1.0 and frame["spread"].isna().tolist() == [False, True, True]
    assert frame["spread_bps"].iloc[0] == pytest.approx(100.0)  # 1 on a mid of 100
    assert frame["value"].isna().tolist() == [False, True, False]
    assert frame["volume_24h"].isna().all()  # a string is not a volume


@pytest.mark.parametrize("hours, points, expected", [(1, 2016, "1m"), (33, 2016, "1m"), (34, 2016, "5m"),
                                                     (168, 2016, "5m"), (24, 300, "5m"), (168, 300, "1h"),
                                                     (1, 300, "1m"), (168, 5, "1d")])
def test_the_finest_resolution_that_fits(hours, points, expected):
    assert frames.fitting_resolution(hours, points) == expected


# --- the resolution rule and what the page says -----------------------------------------------------------------

def framed(rows, **attrs):
    frame = pd.DataFrame(rows, columns=["timestamp", "close"]) if attrs.get("resolution") != "ticks" else \
        pd.DataFrame(rows, columns=["timestamp", "value"])
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True)
    start, end = frames.time_window(attrs.pop("hours", 24), NOW)
    frame.attrs.update({"start": start, "end": end, "held_from": None, "ticks": None, **attrs})
    return frame


def test_auto_asks_for_ticks_in_a_line_and_for_readable_candles():
    assert resolution.requested("auto", resolution.LINE, 24) == "auto"
    assert resolution.requested("auto", resolution.CANDLES, 1) == "1m"
    assert resolution.requested("auto", resolution.CANDLES, 24) == "5m"
    assert resolution.requested("auto", resolution.CANDLES, 168) == "1h"
    assert resolution.requested("1d", resolution.CANDLES, 24) == "1d"


def test_auto_candles_fall_back_to_ticks_only_when_there_are_too_few_bars():
    few = framed([(NOW, 1.0)] * 3, resolution="5m")
    assert resolution.needs_ticks(few, "auto", resolution.CANDLES)
    assert not resolution.needs_ticks(few, "5m", resolution.CANDLES)  # chosen: drawn as asked
    assert not resolution.needs_ticks(few, "auto", resolution.LINE)
    assert not resolution.needs_ticks(framed([(NOW, 1.0)] * 10, resolution="5m"), "auto", resolution.CANDLES)


def test_the_page_says_what_auto_picked_and_why():
    ticks = framed([], resolution="ticks", ticks=1439)
    assert resolution.explain(ticks, "auto", resolution.LINE, 24) == (
        "Resolution: auto → raw ticks: the 1,439 ticks of the last 24 h fit in one chart (at most 2,016 points).")
    many = framed([], resolution="5m", ticks=10_080, hours=168)
    text = resolution.explain(many, "auto", resolution.LINE, 168)
    assert text.startswith("Resolution: auto → 5m bars: its 10,080 ticks are more than a chart draws")
    assert "5m is the finest resolution that draws 168 h in at most 2,016 bars" in text
    shallow = framed([], resolution="5m", ticks=1200, hours=48)
    assert "the tick view does not reach back" in resolution.explain(shallow, "auto", resolution.LINE, 48)
    candles = framed([], resolution="1h", hours=168)
    assert "candlesticks need bars" in resolution.explain(candles, "auto", resolution.CANDLES, 168)
    assert "the window has 1 5m bar so far, too few for candlesticks" in \
        resolution.explain(ticks, "auto", resolution.CANDLES, 24, too_few_bars=1)
    assert resolution.explain(framed([], resolution="ticks"), "ticks", resolution.CANDLES, 24) == (
        "Resolution: raw ticks (chosen). Ticks are drawn as a line: candlesticks need a bar resolution.")


def test_the_page_says_when_the_window_reaches_past_what_the_view_holds():
    start, _ = frames.time_window(168, NOW)
    held = framed([], resolution="1m", hours=168)
    held.attrs["held_from"] = NOW - dt.timedelta(hours=33)
    note = resolution.reach_note(held, "BTC", "CoinGecko", "1m")
    assert note.startswith(f"The window starts {start:%d %b %H:%M} UTC, but the 1m view of BTC · CoinGecko holds data "
                           f"from {NOW - dt.timedelta(hours=33):%d %b %H:%M} UTC on")
    assert note.endswith("A coarser resolution reaches further back.")
    tokyo = resolution.reach_note(held, "BTC", "CoinGecko", "1m", zone="Asia/Tokyo")  # the zone the chart is shown in
    assert tokyo.startswith(f"The window starts {start + dt.timedelta(hours=9):%d %b %H:%M} Asia/Tokyo, but")
    held.attrs["held_from"] = start + dt.timedelta(seconds=30)  # within a bar of the start: the view reaches it
    assert resolution.reach_note(held, "BTC", "CoinGecko", "1m") is None


def test_the_page_says_when_nothing_was_stored_lately():
    old = framed([(NOW - dt.timedelta(hours=3), 1.0)], resolution="ticks")
    assert resolution.newest_note(old, NOW).endswith("(3 h ago); nothing has been stored for this series since.")
    assert resolution.newest_note(framed([(NOW - dt.timedelta(minutes=2), 1.0)], resolution="ticks"), NOW) is None


# --- the CSV ---------------------------------------------------------------------------------------------------

def test_the_csv_holds_the_bars_drawn_and_the_indicator_values():
    rows = [{"timestamp": NOW + dt.timedelta(minutes=5 * i), "sensor_id": "BTC", "series": "BTC", "open": 1.0 + i,
             "high": 2.0 + i, "low": 0.5 + i, "close": 1.5 + i, "ticks": 5, "volume_24h": 3e10,
             "sources": [schema.COINGECKO, schema.COINGECKO_BACKFILL], "currency": "usd"} for i in range(25)]
    frame = frames.bar_frame(rows)
    frame.attrs["resolution"] = "5m"
    lines = indicators.compute(frame["close"], [indicators.SMA])
    table = pd.read_csv(io.StringIO(export.csv(frame, lines)))
    assert list(table.columns) == ["timestamp", "resolution", "sensor_id", "series", "open", "high", "low", "close",
                                   "ticks", "volume_24h", "currency", "sources", "SMA 20"]
    assert len(table) == 25 and table["resolution"].unique().tolist() == ["5m"]
    assert table["sources"].iloc[0] == "coingecko+coingecko-backfill"
    assert table["SMA 20"].isna().sum() == 19 and table["SMA 20"].iloc[-1] == pytest.approx(1.5 + 14.5)
    assert table["timestamp"].iloc[0] == "2025-11-21T12:00:00.123456Z"
