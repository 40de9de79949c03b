"""The charts' time zone: the zones offered (UTC first), and a figure built in UTC shown at another zone's wall time."""

import datetime as dt

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from dashboard import charts, history_charts, time_zones
from tests.unit.test_charts import START, at, bars, frame, ticks


def test_utc_comes_first_then_the_browsers_own_zone_and_only_real_zones_pass():
    zones = time_zones.choices("Europe/Berlin")
    assert zones[:2] == ["UTC", "Europe/Berlin"] and zones.count("Europe/Berlin") == 1 and "Asia/Tokyo" in zones
    assert time_zones.choices(None)[0] == "UTC" and time_zones.choices("Mars/Base")[1] != "Mars/Base"
    assert time_zones.is_zone("Asia/Tokyo") and not time_zones.is_zone("Mars/Base") and not time_zones.is_zone("")
    assert time_zones.label("Asia/Tokyo") == "Asia/Tokyo (UTC+09:00)" and time_zones.label("UTC") == "UTC"
    assert time_zones.label("Europe/Berlin", dt.datetime(2025, 7, 1, tzinfo=dt.timezone.utc)) == \
        "Europe/Berlin (UTC+02:00)"


def test_the_history_chart_in_tokyo_is_nine_hours_ahead_on_its_axis_its_gaps_and_its_candles():
    rows = bars(list(range(0, 10)) + list(range(30, 40)))
    fig = history_charts.history_figure(rows, "BTC", start=at(0), end=at(40))
    utc_candles = [pd.Timestamp(x) for x in fig.data[0].x]
    utc_range = [pd.Timestamp(x) for x in fig.layout.xaxis.range]
    [gap] = [s for s in fig.layout.shapes if s.type == "rect"][:1]
    gap_x0 = pd.Timestamp(gap.x0)
    time_zones.in_zone(fig, "Asia/Tokyo")
    nine = pd.Timedelta(hours=9)
    assert [pd.Timestamp(x) for x in fig.data[0].x] == [(t.tz_localize(None) if t.tzinfo else t) + nine
                                                         for t in utc_candles]
    assert [pd.Timestamp(x) for x in fig.layout.xaxis.range] == [t.tz_localize(None) + nine for t in utc_range]
    assert pd.Timestamp(gap.x0) == gap_x0.tz_localize(None) + nine
    assert fig.layout.yaxis.title.text == "price" and fig.data[0].close[0] == rows["close"].iloc[0]  # prices untouched
    bottom = max((n for n in fig.layout if n.startswith("xaxis")), key=lambda n: int(n[5:] or 1))
    assert fig.layout[bottom].title.text == "time in Asia/Tokyo (UTC+09:00)"


def test_utc_leaves_a_figure_as_it_is_and_numbers_on_x_are_never_times():
    fig = history_charts.history_figure(bars(range(5)), "BTC")
    before = fig.to_json()
    assert time_zones.in_zone(fig, "UTC").to_json() == before
    latest = frame(ticks([0], volume=3e10))
    volume = charts.volume_figure(latest)  # volumes along x
    time_zones.in_zone(volume, "Asia/Tokyo")
    assert list(volume.data[0].x) == [3e10] and not volume.layout.xaxis.title.text


def test_lines_with_breaks_keep_their_breaks_and_a_day_boundary_moves_with_the_zone():
    fig = go.Figure(go.Scatter(x=[pd.Timestamp(START), None, pd.Timestamp(START) + pd.Timedelta(hours=20)],
                               y=[1, None, 2]))
    time_zones.in_zone(fig, "America/New_York")  # UTC-5 in November
    assert list(fig.data[0].x) == [pd.Timestamp("2025-11-20 19:00"), None, pd.Timestamp("2025-11-21 15:00")]
    array = go.Figure(go.Scatter(x=np.array(["2025-11-21T00:00"], dtype="datetime64[ns]"), y=[1]))
    time_zones.in_zone(array, "Asia/Kolkata")
    assert pd.Timestamp(array.data[0].x[0]) == pd.Timestamp("2025-11-21 05:30")
