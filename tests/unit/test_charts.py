"""The dashboard's figures: gaps, backfill and trend traces, live panels, volume colours, and PNG export."""

import datetime as dt
import struct
import subprocess
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go
import pytest

from cryptoapp import schema
from dashboard import charts, data

UTC = dt.timezone.utc
START = dt.datetime(2025, 11, 21, 0, 0, tzinfo=UTC)
ROOT = Path(__file__).resolve().parents[2]


def ticks(minutes, source="coingecko", ticker="BTC", granularity=None, value=100.0, change=1.0, volume=1e9):
    return [{"timestamp": START + dt.timedelta(minutes=m), "sensor_id": ticker, "value": value + m,
             "volume_24h": volume, "change_24h_pct": change, "source": source, "granularity": granularity}
            for m in minutes]


def frame(*groups):
    return data.frame_from_documents([doc for group in groups for doc in group])


def at(minutes):
    return pd.Timestamp(START + dt.timedelta(minutes=minutes))


def test_regular_ticks_have_no_gap():
    assert charts.gap_spans(frame(ticks(range(0, 120))), interval_s=60) == []


def test_a_silence_longer_than_the_gap_threshold_is_a_gap_with_exact_bounds():
    rows = frame(ticks(list(range(0, 30)) + list(range(33, 40)) + list(range(52, 60))))
    # 4 minutes is no gap (the backfill would find nothing to fill in it); 13 minutes is
    assert charts.gap_spans(rows, interval_s=60) == [(at(39), at(52))]
    assert charts.gap_spans(rows, interval_s=420) == []  # 13 min is within two 7-minute intervals


def test_the_chart_shades_exactly_the_gaps_the_backfill_fills():
    from cryptoapp.backfill.history import find_gaps

    minutes = [0, 1, 2, 9, 25, 26, 40, 41, 53, 60]
    labels = ["5m", "5m", None, None, "1h", None, None, "5m", None, None]
    rows = frame(*[ticks([m], granularity=g) for m, g in zip(minutes, labels)])
    stored = [(at(m).to_pydatetime(), g) for m, g in zip(minutes, labels)]
    backfill = [(pd.Timestamp(s.start), pd.Timestamp(s.end)) for s in find_gaps(stored, at(0), at(60), 60)]
    # 9 -> 25 borders hourly history (no gap); 26 -> 40 and 41 -> 53 are over 10 minutes
    assert charts.gap_spans(rows, 60, start=at(0), end=at(60)) == backfill == [(at(26), at(40)), (at(41), at(53))]


def test_backfill_spacing_is_its_granularity_not_a_gap():
    rows = frame(ticks(range(0, 60, 5), source=schema.COINGECKO_BACKFILL, granularity="5m"), ticks(range(60, 70)))
    assert charts.gap_spans(rows, interval_s=60) == []
    holey = frame(ticks([0, 5, 30], source=schema.COINGECKO_BACKFILL, granularity="5m"))
    assert charts.gap_spans(holey, interval_s=60) == [(at(5), at(30))]


def test_window_edges_without_ticks_are_gaps_too():
    rows = frame(ticks(range(30, 40)))
    assert charts.gap_spans(rows, 60, start=at(0), end=at(41)) == [(at(0), at(30))]
    assert charts.gap_spans(frame(), 60, start=at(0), end=at(60)) == [(at(0), at(60))]


def test_buckets_widen_the_allowed_spacing():
    rows = frame(ticks(range(0, 90, 15)))
    assert charts.gap_spans(rows, 60) != []
    assert charts.gap_spans(rows, 60, bucket_s=600) == []


def test_history_draws_backfill_dashed_in_its_own_legend_entry_and_shades_gaps():
    rows = frame(ticks(range(0, 60, 5), source=schema.COINGECKO_BACKFILL, granularity="5m"), ticks(range(90, 120)))
    fig = charts.history_figure(rows, "BTC", "Price", interval_s=60, start=at(0), end=at(120))
    by_name = {trace.name: trace for trace in fig.data}
    live, backfill = by_name["CoinGecko (live)"], by_name["CoinGecko backfill (5m points)"]
    assert live.line.dash == "solid" and backfill.line.dash == "dash"
    assert live.line.color != backfill.line.color
    assert [y for y in backfill.y if y is not None] == [100.0 + m for m in range(0, 60, 5)]
    assert "no data (gap)" in by_name
    assert [(s.x0, s.x1) for s in fig.layout.shapes] == [(at(55), at(90))]
    assert fig.layout.uirevision == "history-BTC-Price"


def test_lines_break_at_gaps_instead_of_bridging_them():
    fig = charts.history_figure(frame(ticks([0, 1, 2, 20, 21])), "BTC", "Price", interval_s=60)
    assert list(fig.data[0].y) == [100.0, 101.0, 102.0, None, 120.0, 121.0]


def test_large_series_use_webgl_and_small_ones_svg():
    big = charts.history_figure(frame(ticks(range(1500))), "BTC", "Price")
    small = charts.history_figure(frame(ticks(range(100))), "BTC", "Price")
    assert isinstance(big.data[0], go.Scattergl) and isinstance(small.data[0], go.Scatter)


def test_trend_is_a_moving_average_over_the_chosen_hours():
    fig = charts.history_figure(frame(ticks(range(0, 180))), "BTC", "Price", trend_hours=1)
    trend = next(t for t in fig.data if t.name == "1 h moving average")
    assert trend.y[0] == 100.0 and trend.y[-1] == pytest.approx(sum(100.0 + m for m in range(120, 180)) / 60)


def test_other_metrics_and_simulated_data_are_labelled():
    fig = charts.history_figure(frame(ticks(range(10), source=schema.SIMULATED)), "ETH", "24 h volume")
    assert fig.layout.yaxis.title.text == "24 h volume (USD)"
    assert "simulated" in fig.layout.title.text and "simulated" in fig.data[0].name


def test_live_prices_have_one_panel_per_coin_with_a_shared_time_axis():
    series = frame(ticks(range(30)), ticks(range(30), ticker="ETH", source=schema.SIMULATED, value=3000))
    fig = charts.live_prices_figure(series, ["BTC", "ETH", "BNB"])  # BNB has no ticks: no empty panel
    assert [t.name for t in fig.data] == ["BTC", "ETH (simulated)"]
    assert fig.layout.yaxis.title.text == "BTC" and fig.layout.yaxis2.title.text == "ETH (simulated)"
    assert fig.layout.xaxis.matches == "x2" and fig.layout.xaxis2.matches is None  # zooming one zooms both
    assert fig.layout.uirevision == "live-prices"


def test_volume_bars_are_green_up_red_down_and_dash_for_missing():
    latest = frame(ticks([0], change=3.6, volume=3e10), ticks([0], ticker="ETH", change=-1.2, volume=None),
                   ticks([0], ticker="USDT", change=None))
    latest = latest.set_index("sensor_id").loc[["BTC", "ETH", "USDT"]].reset_index()
    fig = charts.volume_figure(latest)
    bar = fig.data[0]
    assert list(bar.y) == ["USDT", "ETH", "BTC"]  # first coin on top
    assert list(bar.marker.color) == [charts.FLAT, charts.DOWN, charts.UP]
    assert list(bar.text) == ["$1.00 B", "—", "$30.00 B"]


def png_size(png: bytes) -> tuple[int, int]:
    assert png[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    length, kind = struct.unpack(">I4s", png[8:16])
    assert kind == b"IHDR" and length == 13
    return struct.unpack(">II", png[16:24])


@pytest.fixture(scope="module")
def chromium():
    """Requires Chromium (kaleido draws PNGs with it): installed the way `make services` does."""
    subprocess.run([str(ROOT / "scripts" / "services.sh"), "up", "chromium"], check=True, timeout=600)


def test_png_export_has_the_requested_size(chromium):
    fig = charts.history_figure(frame(ticks(range(0, 300))), "BTC", "Price", trend_hours=1)
    assert png_size(charts.figure_png(fig, width=640, height=360)) == (640, 360)


def test_png_export_without_chromium_says_what_to_install(monkeypatch):
    monkeypatch.setenv("BROWSER_PATH", "/nonexistent/chromium")
    with pytest.raises(charts.PngExportError, match="needs Chromium.*apt-get install chromium"):
        charts.figure_png(go.Figure(), 100, 100)
