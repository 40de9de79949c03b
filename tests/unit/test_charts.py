"""The dashboard's figures: gaps, fitted time axes, series kept apart, candlesticks by provenance, indicator panels,
extra layers, volume colours, and PNG export."""

import datetime as dt
import math
import struct
import subprocess
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go
import pytest

from cryptoapp import schema
from dashboard import chart_layout, charts, frames, history_charts, image_export, indicators

UTC = dt.timezone.utc
START = dt.datetime(2025, 11, 21, 0, 0, tzinfo=UTC)
ROOT = Path(__file__).resolve().parents[2]


def ticks(minutes, source="coingecko", ticker="BTC", granularity=None, value=100.0, change=1.0, volume=1e9,
          series=None, **extra):
    return [{"timestamp": START + dt.timedelta(minutes=m), "sensor_id": ticker, "value": value + m,
             "volume_24h": volume, "change_24h_pct": change, "source": source, "granularity": granularity,
             "series": series or ticker, "currency": "usd", **extra} for m in minutes]


def frame(*groups):
    return frames.tick_frame([doc for group in groups for doc in group])


def bars(minutes, sources=("coingecko",), resolution="1m", start_value=100.0):
    rows = [{"timestamp": START + dt.timedelta(minutes=m), "sensor_id": "BTC", "series": "BTC",
             "open": start_value + m, "high": start_value + m + 2, "low": start_value + m - 1,
             "close": start_value + m + 1, "ticks": 3, "volume_24h": 1e9 + m, "sources": list(sources),
             "currency": "usd"} for m in minutes]
    result = frames.bar_frame(rows)
    result.attrs["resolution"] = resolution
    return result


def at(minutes):
    return pd.Timestamp(START + dt.timedelta(minutes=minutes))


def gap_shades(fig):
    """The grey "no data" spans drawn on the figure (its other shapes are lines: the last price, density changes)."""
    return [s for s in fig.layout.shapes if s.type == "rect"]


# --- gaps ------------------------------------------------------------------------------------------------------

def test_regular_ticks_have_no_gap():
    assert chart_layout.gap_spans(frame(ticks(range(0, 120))), interval_s=60) == []


def test_a_silence_longer_than_the_gap_threshold_is_a_gap_with_exact_bounds():
    rows = frame(ticks(list(range(0, 30)) + list(range(33, 40)) + list(range(52, 60))))
    # 4 minutes is no gap (the backfill would find nothing to fill in it); 13 minutes is
    assert chart_layout.gap_spans(rows, interval_s=60) == [(at(39), at(52))]
    assert chart_layout.gap_spans(rows, interval_s=420) == []  # 13 min is within two 7-minute intervals


def test_the_chart_shades_exactly_the_gaps_the_backfill_fills():
    from cryptoapp.backfill.history import find_gaps

    minutes = [0, 1, 2, 9, 25, 26, 40, 41, 53, 60]
    labels = ["5m", "5m", None, None, "1h", None, None, "5m", None, None]
    rows = frame(*[ticks([m], granularity=g) for m, g in zip(minutes, labels)])
    stored = [(at(m).to_pydatetime(), g) for m, g in zip(minutes, labels)]
    backfill = [(pd.Timestamp(s.start), pd.Timestamp(s.end)) for s in find_gaps(stored, at(0), at(60), 60)]
    # 9 -> 25 borders hourly history (no gap); 26 -> 40 and 41 -> 53 are over 10 minutes
    assert chart_layout.gap_spans(rows, 60, start=at(0), end=at(60)) == backfill == [(at(26), at(40)), (at(41), at(53))]


def test_backfill_spacing_is_its_granularity_not_a_gap():
    rows = frame(ticks(range(0, 60, 5), source=schema.COINGECKO_BACKFILL, granularity="5m"), ticks(range(60, 70)))
    assert chart_layout.gap_spans(rows, interval_s=60) == []
    holey = frame(ticks([0, 5, 30], source=schema.COINGECKO_BACKFILL, granularity="5m"))
    assert chart_layout.gap_spans(holey, interval_s=60) == [(at(5), at(30))]


def test_bars_are_a_gap_only_past_two_of_their_own_length():
    hourly = bars([0, 60, 120, 300], resolution="1h")
    assert chart_layout.gap_spans(hourly, 60, bucket_s=3600) == [(at(120), at(300))]


# --- the time axis ---------------------------------------------------------------------------------------------

def test_the_axis_is_the_window_when_the_data_reaches_its_edges():
    assert chart_layout.fitted_range(at(1), at(1439), at(0), at(1440)) == (at(0), at(1440))


def test_one_minute_of_data_fills_the_axis_instead_of_a_sliver_of_a_24h_window():
    lo, hi = chart_layout.fitted_range(at(1438), at(1439), at(0), at(1440))
    assert hi == at(1440)  # the data reaches now
    assert at(1438) - pd.Timedelta(seconds=10) < lo < at(1438)
    lo, hi = chart_layout.fitted_range(at(600), at(601), at(0), at(1440))  # a source that stopped long ago
    assert (hi - lo) < pd.Timedelta(minutes=2)


def test_history_axis_fits_the_bars_and_the_last_bar_ends_a_resolution_later():
    fig = history_charts.history_figure(bars(range(1430, 1436)), "BTC", start=at(0), end=at(1440))
    lo, hi = (pd.Timestamp(x) for x in fig.layout.xaxis.range)
    assert at(1429) < lo < at(1430) and hi == at(1440)
    assert gap_shades(fig) == []  # the hours before the data are no gap to shade: the axis starts at the data


# --- the real-time tab -----------------------------------------------------------------------------------------

def live_series(*groups):
    rows = frame(*groups)[["timestamp", "sensor_id", "series", "value", "source"]]
    return rows.assign(resolution="ticks")


def test_live_prices_have_one_panel_per_coin_and_coingecko_and_exchange_lines_apart():
    series = live_series(ticks(range(30)), ticks(range(30), source="binanceus", series="BTC_binanceus", value=101),
                         ticks(range(30), ticker="ETH", source=schema.SIMULATED, value=3000))
    names = {"BTC": "CoinGecko", "BTC_binanceus": "binanceus (USDT)", "ETH": "simulated"}
    fig = charts.live_prices_figure(series, ["BTC", "ETH", "BNB"], names)  # BNB has no ticks: no empty panel
    assert [t.name for t in fig.data] == ["BTC · CoinGecko", "BTC · binanceus (USDT)", "ETH · simulated"]
    assert [t.yaxis for t in fig.data] == ["y", "y", "y2"]
    assert fig.data[0].line.color != fig.data[1].line.color
    assert [y for y in fig.data[1].y if y is not None][0] == 101.0  # the exchange's own prices, not merged
    assert fig.layout.yaxis.title.text == "BTC" and fig.layout.yaxis2.title.text == "ETH (simulated)"
    assert fig.layout.xaxis.matches == "x2"  # zooming one zooms both
    assert fig.layout.uirevision == "live-prices"
    assert [t.showlegend for t in fig.data] == [True, True, False]


def test_live_prices_of_one_minute_fill_the_24h_chart():
    series = live_series(ticks([0, 0.5, 1]))
    fig = charts.live_prices_figure(series, ["BTC"], {}, start=at(-1439), end=at(1.1))
    lo, hi = (pd.Timestamp(x) for x in fig.layout.xaxis.range)
    assert hi - lo < pd.Timedelta(minutes=2)


def test_a_series_drawn_from_5_minute_closes_says_so():
    series = live_series(ticks(range(0, 60, 5), source="binanceus", series="BTC_binanceus"))
    series["resolution"] = "5m"
    fig = charts.live_prices_figure(series, ["BTC"], {"BTC_binanceus": "binanceus"})
    assert fig.data[0].name == "BTC · binanceus (5m closes)" and None not in fig.data[0].y


def test_volume_bars_are_green_up_red_down_and_an_exchange_in_its_own_currency():
    latest = frame(ticks([0], change=3.6, volume=3e10), ticks([0], ticker="ETH", change=-1.2, volume=None),
                   ticks([0], ticker="BTC", series="BTC_binanceus", source="binanceus", change=None, volume=1.5e9,
                         currency="usdt"))
    latest = latest.set_index("series").loc[["BTC", "BTC_binanceus", "ETH"]].reset_index()
    fig = charts.volume_figure(latest)
    bar = fig.data[0]
    assert list(bar.y) == ["ETH", "BTC · binanceus (USDT)", "BTC"]  # first coin on top
    assert list(bar.marker.color) == [chart_layout.DOWN, chart_layout.FLAT, chart_layout.UP]
    assert list(bar.text) == ["—", "1.50 B USDT", "$30.00 B"]


def test_series_names():
    assert charts.series_name("BTC", "BTC", "coingecko") == "CoinGecko"
    assert charts.series_name("BTC", "BTC", schema.SIMULATED) == "simulated"
    assert charts.series_name("BTC_binanceus", "BTC", "binanceus", "usdt") == "binanceus (USDT)"
    assert charts.series_name("BTC_kraken", "BTC", "kraken", "usd") == "kraken"


# --- the history tab -------------------------------------------------------------------------------------------

def traces(fig, kind):
    return [t for t in fig.data if t.type == kind]


def test_candlesticks_keep_live_backfilled_and_simulated_bars_apart():
    rows = pd.concat([bars(range(0, 10), [schema.COINGECKO_BACKFILL]),
                      bars(range(10, 20), [schema.COINGECKO, schema.COINGECKO_BACKFILL]),
                      bars(range(20, 30), [schema.COINGECKO]), bars(range(30, 35), [schema.SIMULATED])],
                     ignore_index=True)
    rows.attrs["resolution"] = "1m"
    fig = history_charts.history_figure(rows, "BTC")
    candles = {t.name: t for t in traces(fig, "candlestick")}
    assert set(candles) == {"CoinGecko backfill (history)", "CoinGecko (live)", "simulated data (not market prices)"}
    assert len(candles["CoinGecko backfill (history)"].x) == 20  # a bar with any backfilled tick is drawn as such
    assert list(candles["CoinGecko (live)"].open) == [100.0 + m for m in range(20, 30)]
    fills = {name: (t.increasing.fillcolor, t.decreasing.fillcolor) for name, t in candles.items()}
    assert len(set(fills.values())) == 3  # each kind of bar looks its own
    assert "simulated data" in fig.layout.title.text and "1m bars" in fig.layout.title.text
    assert fig.layout.xaxis.rangeslider.visible is False


def hue(color: str) -> float:
    """The hue in degrees of "#rrggbb" or "rgba(r, g, b, a)"."""
    import colorsys

    if color.startswith("#"):
        rgb = [int(color[i:i + 2], 16) for i in (1, 3, 5)]
    else:
        rgb = [float(v) for v in color[color.index("(") + 1:-1].split(",")[:3]]
    return colorsys.rgb_to_hsv(*(v / 255 for v in rgb))[0] * 360


def test_up_candles_are_green_and_down_candles_red_in_every_series_with_a_legend_saying_so():
    rows = pd.concat([bars(range(0, 10), [schema.COINGECKO_BACKFILL]), bars(range(10, 20), [schema.COINGECKO]),
                      bars(range(20, 30), [schema.SIMULATED])], ignore_index=True)
    rows.attrs["resolution"] = "1m"
    fig = history_charts.history_figure(rows, "BTC")
    candles = traces(fig, "candlestick")
    assert len(candles) == 3
    for candle in candles:
        for color in (candle.increasing.line.color, candle.increasing.fillcolor):
            assert 90 <= hue(color) <= 160, (candle.name, color)  # green
        for color in (candle.decreasing.line.color, candle.decreasing.fillcolor):
            assert hue(color) <= 15 or hue(color) >= 345, (candle.name, color)  # red
    legend = {t.name: t.marker.color for t in fig.data if t.name and t.name.startswith(("up bar", "down bar"))}
    assert legend == {"up bar: close above open": chart_layout.UP, "down bar: close below open": chart_layout.DOWN}
    assert not [t for t in history_charts.history_figure(rows, "BTC", mode="line").data
                if t.name and t.name.startswith("up bar")]  # a line has no up or down bars


def test_a_simulated_series_says_simulated_once_in_the_title():
    rows = bars(range(30), [schema.SIMULATED])
    assert history_charts.history_figure(rows, "BTC", "simulated").layout.title.text == "BTC · simulated · 1m bars"
    assert history_charts.history_figure(rows, "BTC").layout.title.text == "BTC · CoinGecko · 1m bars · simulated data"


def density_marks(fig):
    return [(pd.Timestamp(a.x), a.text) for a in fig.layout.annotations if a.name == "density change"]


def test_where_bars_turn_from_single_ticks_to_full_ones_the_chart_says_so():
    rows = bars(range(30))
    rows["ticks"] = [1] * 12 + [5] * 18  # twelve 5-minute points of the backfill, then live minutes
    fig = history_charts.history_figure(rows, "BTC")
    assert density_marks(fig) == [(at(12), "← one tick a bar (dots) · full bars →")]
    assert [pd.Timestamp(s.x0) for s in fig.layout.shapes if s.type == "line" and s.xref == "x"] == [at(12)]
    rows["ticks"] = [5] * 10 + [1] * 20
    assert density_marks(history_charts.history_figure(rows, "BTC")) == [(at(10), "← full bars · one tick a bar (dots) →")]
    rows["ticks"] = [1] * 10 + [4, 4] + [1] * 18  # two full bars among dots are no change of density
    assert density_marks(history_charts.history_figure(rows, "BTC")) == []
    rows["ticks"] = [1] * 12 + [5] * 18
    assert density_marks(history_charts.history_figure(rows, "BTC", mode="line")) == []  # a line draws no dots


def last_price_tag(fig):
    [tag] = [a for a in fig.layout.annotations if a.name == "last price"]
    return tag


def test_the_last_price_is_a_line_and_a_tag_on_the_right_axis_coloured_by_its_bar():
    rows = bars(range(30), start_value=87000.0)  # every bar closes above its open
    fig = history_charts.history_figure(rows, "BTC")
    tag = last_price_tag(fig)
    assert tag.text == "$87,030.00" and tag.y == 87030.0 and tag.bgcolor == chart_layout.UP
    assert (tag.xref, tag.x, tag.xanchor) == ("x domain", 1, "left")  # just right of the plot: on the price axis
    [line] = [s for s in fig.layout.shapes if s.type == "line" and s.xref == "x domain"]
    assert line.y0 == line.y1 == 87030.0
    rows.loc[rows.index[-1], "close"] = rows["open"].iloc[-1] - 5
    assert last_price_tag(history_charts.history_figure(rows, "BTC")).bgcolor == chart_layout.DOWN
    logged = history_charts.history_figure(rows, "BTC", log_y=True)
    assert logged.layout.yaxis.type == "log" and logged.layout.yaxis2.type != "log"  # the price only
    assert last_price_tag(logged).y == pytest.approx(math.log10(87024.0))  # annotations sit at the log on log axes
    ticks_fig = history_charts.history_figure(frame(ticks(range(10), value=2900.0)), "ETH", mode="line")
    assert last_price_tag(ticks_fig).text == "$2,909.00" and last_price_tag(ticks_fig).bgcolor == chart_layout.UP


def test_a_crosshair_follows_the_pointer_across_every_panel():
    fig = history_charts.history_figure(bars(range(30)), "BTC")
    for axis in (fig.layout.xaxis, fig.layout.xaxis2, fig.layout.yaxis):
        assert axis.showspikes and axis.spikemode == "across"
    assert fig.layout.hovermode == "x unified"  # every trace's values (a candle's OHLC) at the pointer's time


def test_the_volume_panel_says_it_is_the_rolling_24h_volume_at_bar_close():
    fig = history_charts.history_figure(bars(range(30)), "BTC")
    volume = traces(fig, "bar")[0]
    assert "24 h volume at bar close" in volume.name and "rolling" in volume.name
    assert list(volume.y) == [1e9 + m for m in range(30)] and volume.yaxis == "y2"


def test_rsi_and_macd_get_panels_of_their_own_and_overlays_share_the_price():
    rows = bars(range(60))
    lines = indicators.compute(rows["close"], indicators.INDICATORS)
    fig = history_charts.history_figure(rows, "BTC", lines=lines)
    axis = {t.name: t.yaxis for t in fig.data}
    assert axis["SMA 20"] == axis["EMA 50"] == axis["Bollinger 20, 2σ upper"] == axis["CoinGecko (live)"] == "y"
    assert axis["RSI 14"] == "y3" and axis["MACD 12/26/9"] == axis["MACD 12/26/9 histogram"] == "y4"
    assert fig.layout.yaxis3.range == (0, 100)
    names = [t.name for t in fig.data]  # the band's fill runs from lower to upper: lower right after upper
    assert names.index("Bollinger 20, 2σ lower") == names.index("Bollinger 20, 2σ upper") + 1
    sma = next(t for t in fig.data if t.name == "SMA 20")
    assert list(sma.y[19:]) == pytest.approx(list(rows["close"].rolling(20).mean().iloc[19:]))


def test_line_mode_draws_closes_and_breaks_at_gaps():
    fig = history_charts.history_figure(bars([0, 1, 2, 20, 21]), "BTC", mode="line")
    line = next(t for t in fig.data if t.type in ("scatter", "scattergl"))
    assert list(line.y) == [101.0, 102.0, 103.0, None, 121.0, 122.0]
    assert [(s.x0, s.x1) for s in gap_shades(fig)][:1] == [(at(2), at(20))]


def test_ticks_draw_a_line_per_source_with_backfill_dashed():
    rows = frame(ticks(range(0, 60, 5), source=schema.COINGECKO_BACKFILL, granularity="5m"), ticks(range(60, 90)))
    rows.attrs["resolution"] = "ticks"
    fig = history_charts.history_figure(rows, "BTC", mode="line")
    lines = {t.name: t for t in fig.data if t.type in ("scatter", "scattergl")}
    assert lines["CoinGecko (live)"].line.dash == "solid"
    assert lines["CoinGecko backfill (5m points)"].line.dash == "dash"
    assert "24 h volume at each tick" in traces(fig, "bar")[0].name


def test_large_series_use_webgl_and_small_ones_svg():
    big = history_charts.history_figure(bars(range(1500)), "BTC", mode="line")
    small = history_charts.history_figure(bars(range(100)), "BTC", mode="line")
    assert isinstance(big.data[0], go.Scattergl) and isinstance(small.data[0], go.Scatter)


def test_extra_layers_draw_on_named_panels_for_alerts_or_forecasts():
    calls = []

    def markers(fig, panels):
        calls.append(dict(panels.rows))
        fig.add_trace(go.Scatter(x=[at(5)], y=[105.0], mode="markers", name="alert"), row=panels.row("price"), col=1)

    def score(fig, panels):
        fig.add_trace(go.Scatter(x=[at(5)], y=[0.3], name="score"), row=panels.row("forecast error"), col=1)

    fig = history_charts.history_figure(bars(range(30)), "BTC", layers=[markers, score], extra_panels=["forecast error"])
    assert calls == [{"price": 1, "volume": 2, "forecast error": 3}]
    axis = {t.name: t.yaxis for t in fig.data}
    assert axis["alert"] == "y" and axis["score"] == "y3"


def test_an_unknown_mode_is_refused():
    with pytest.raises(ValueError, match="candles or line"):
        history_charts.history_figure(bars(range(3)), "BTC", mode="area")


# --- PNG -------------------------------------------------------------------------------------------------------

def png_size(image: bytes) -> tuple[int, int]:
    assert image[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    length, kind = struct.unpack(">I4s", image[8:16])
    assert kind == b"IHDR" and length == 13
    return struct.unpack(">II", image[16:24])


@pytest.fixture(scope="module")
def chromium():
    """Requires Chromium (kaleido draws PNGs with it): installed the way `make services` does."""
    subprocess.run([str(ROOT / "scripts" / "services.sh"), "up", "chromium"], check=True, timeout=600)


def test_png_export_has_the_requested_size(chromium):
    rows = bars(range(0, 300))
    fig = history_charts.history_figure(rows, "BTC", lines=indicators.compute(rows["close"], indicators.INDICATORS))
    assert png_size(image_export.figure_png(fig, width=640, height=360)) == (640, 360)


def test_png_export_without_chromium_says_what_to_install(monkeypatch):
    monkeypatch.setenv("BROWSER_PATH", "/nonexistent/chromium")
    with pytest.raises(image_export.PngExportError, match="needs Chromium.*apt-get install chromium"):
        image_export.figure_png(go.Figure(), 100, 100)


def test_trade_built_bars_draw_their_own_volume_coloured_up_down_and_the_vwap():
    traded = bars(range(4))
    traded["quote_volume"] = [1e6, 2e6, 3e6, 4e6]
    traded["vwap"] = traded["close"] - 0.5
    traded.loc[2, "close"] = traded.loc[2, "open"] - 1  # one down bar
    fig = history_charts.history_figure(traded, "BTC", "binanceus")
    volume = next(t for t in fig.data if t.name == "volume per bar (from trades)")
    assert list(volume.y) == [1e6, 2e6, 3e6, 4e6]
    assert list(volume.marker.color) == [chart_layout.UP, chart_layout.UP, chart_layout.DOWN, chart_layout.UP]
    vwap = next(t for t in fig.data if t.name == "VWAP (per bar)")
    assert list(vwap.y) == list(traded["vwap"]) and vwap.yaxis == "y"
    ticker_bars = history_charts.history_figure(bars(range(4)), "BTC")  # ticker bars: the 24 h volume, no VWAP
    assert not [t for t in ticker_bars.data if t.name in ("VWAP (per bar)", "volume per bar (from trades)")]
