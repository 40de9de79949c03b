"""Trades, pure: Binance's <symbol>@trade read field by field, and the true 1 m bars (and their merges) made of them."""

import random

import pytest

from cryptoapp.trades.bars import add_trades, group_by_minute, merge_bars, minute_bar, new_minute
from cryptoapp.trades.models import InvalidTrade, Trade, decode_trade, trade_fields, trade_payload

T0 = 1_796_648_400_000  # a minute's start, in ms
EVENT = {"e": "trade", "E": T0 + 5, "s": "BTCUSD", "t": 12345, "p": "67000.50000000", "q": "0.01000000",
         "b": 88, "a": 50, "T": T0 + 3, "m": True, "M": True}


def trade(ident, at, price, amount, ticker="BTC"):
    return Trade(ticker, "binanceus", "usd", ident, at, price, amount, "buy")


def bars_of(trades):
    """The 1 m bars the stage makes of a batch: grouped by minute, each minute's trades added once."""
    out = {}
    for key, group in group_by_minute(trades).items():
        minute = new_minute(group[0].series, group[0].ticker, "usd", group[0].time_ms // 60000 * 60)
        add_trades(minute, [(t.id, t.time_ms, t.price, t.amount) for t in group])
        out[key] = minute_bar(minute)
    return out


def test_a_binance_trade_is_read_from_its_own_fields_raw_or_in_a_combined_stream():
    assert trade_fields(EVENT) == (12345, T0 + 3, 67000.5, 0.01, "sell")  # m: the buyer made, the taker sold
    assert trade_payload({"stream": "btcusd@trade", "data": EVENT}) is EVENT
    assert trade_payload({"e": "24hrTicker"}) is None
    for name in ("t", "T", "p", "q", "m"):
        with pytest.raises(InvalidTrade, match=f"no {name}"):
            trade_fields({k: v for k, v in EVENT.items() if k != name})
    with pytest.raises(InvalidTrade, match="p="):
        trade_fields({**EVENT, "p": "abc"})
    t = trade(1, T0, 2.5, 4.0)
    assert decode_trade(t.encode()) == t


def test_a_trade_counted_twice_counts_once():
    minute = new_minute("BTC_binanceus", "BTC", "usd", T0 // 1000)
    assert add_trades(minute, [(1, T0, 100.0, 1.0), (2, T0 + 10, 101.0, 2.0)])
    assert not add_trades(minute, [(2, T0 + 10, 101.0, 2.0)])  # a replay after a reconnect, a redelivery
    bar = minute_bar(minute)
    assert (bar.trades, bar.volume, bar.quote_volume) == (2, 3.0, 302.0)
    assert bar.vwap == pytest.approx(302.0 / 3.0)


def test_open_and_close_by_trade_time_and_ties_by_trade_id():
    bar = minute_bar(_minute([(7, T0 + 500, 10.0, 1.0), (5, T0 + 500, 11.0, 1.0), (9, T0 + 900, 12.0, 1.0),
                              (8, T0 + 900, 9.0, 1.0), (3, T0 + 800, 13.0, 1.0)]))
    assert (bar.open, bar.high, bar.low, bar.close) == (11.0, 13.0, 9.0, 12.0)
    assert (bar.provenance, bar.volume_24h) == ("trades", None)


def test_no_bar_is_missed_at_a_minute_boundary_inside_one_batch():
    bars = bars_of([trade(1, T0 + 59_999, 100.0, 1.0), trade(2, T0 + 60_000, 200.0, 2.0),
                    trade(3, T0 + 30_000, 50.0, 1.0)])
    assert [(b.start.timestamp(), b.open, b.close, b.trades) for b in sorted(bars.values(), key=lambda b: b.start)] \
        == [(T0 / 1000, 50.0, 100.0, 2), (T0 / 1000 + 60, 200.0, 200.0, 1)]


def test_a_late_trade_corrects_its_closed_minute_and_the_bars_over_it():
    minute = _minute([(10, T0 + 20_000, 100.0, 1.0), (11, T0 + 40_000, 102.0, 1.0)])
    later = minute_bar(_minute([(12, T0 + 70_000, 105.0, 1.0)]))
    before = merge_bars([minute_bar(minute), later], "5m")
    assert add_trades(minute, [(9, T0 + 1_000, 99.0, 3.0)])  # came after its minute closed
    after = merge_bars([minute_bar(minute), later], "5m")
    assert (before.open, after.open, after.low, after.volume, after.trades) == (100.0, 99.0, 99.0, 6.0, 4)
    assert after.vwap == pytest.approx((100 + 102 + 105 + 99 * 3) / 6)


def test_many_series_and_minutes_in_one_batch_shuffled_and_duplicated_equal_the_trades():
    rng = random.Random(7)
    trades = [trade(i, T0 + rng.randrange(0, 7 * 60_000), round(rng.uniform(90, 110), 2), round(rng.uniform(0.1, 2), 3),
                    ticker=rng.choice(["BTC", "ETH", "BNB"])) for i in range(3000)]
    batch = trades + rng.sample(trades, 500)
    rng.shuffle(batch)
    bars = bars_of(batch)
    expected = {}
    for t in trades:
        expected.setdefault((t.series, t.time_ms // 60000), []).append(t)
    assert len(bars) == len(expected) == 21
    for (series, minute), group in expected.items():
        bar = bars[f"{series}@{minute}"]
        ordered = sorted(group, key=lambda t: (t.time_ms, t.id))
        assert (bar.open, bar.close) == (ordered[0].price, ordered[-1].price)
        assert (bar.high, bar.low, bar.trades) == (max(t.price for t in group), min(t.price for t in group), len(group))
        assert bar.volume == pytest.approx(sum(t.amount for t in group))
        assert bar.quote_volume == pytest.approx(sum(t.amount * t.price for t in group))
    day = merge_bars([b for b in bars.values() if b.series == "BTC_binanceus"], "1d")
    assert day.trades == len([t for t in trades if t.ticker == "BTC"])


def _minute(rows):
    minute = new_minute("BTC_binanceus", "BTC", "usd", T0 // 1000)
    add_trades(minute, rows)
    return minute


def test_klines_compared_minute_by_minute_a_gap_named_and_repaired_a_difference_named():
    from cryptoapp.sources.klines import Comparison, compare

    m = T0
    stored = {m: {"provenance": "trades", "open": 10.0, "high": 12.0, "low": 9.0, "close": 11.0, "volume": 3.0,
                  "trades": 3, "first_trade_id": 1, "last_trade_id": 3},
              m + 60_000: {"provenance": "trades", "open": 11.0, "high": 11.0, "low": 11.0, "close": 11.0,
                           "volume": 1.0, "trades": 2, "first_trade_id": 4, "last_trade_id": 6}}  # id 5 missed
    klines = [[m, 10.0, 12.0, 9.0, 11.0, 3.0 + 1e-12], [m + 60_000, 11.0, 11.5, 11.0, 11.0, 1.5],
              [m + 120_000, 11.0, 11.0, 11.0, 11.0, 0.0], [m + 180_000, 11.0, 11.2, 10.9, 11.1, 0.7]]
    out = Comparison()
    compare("BTC_binanceus", "BTC", "usd", "binanceus", klines, stored, out)
    assert (out.checked, out.mismatches) == (1, [])  # volume within rounding
    assert [line.split(": ", 1)[1] for line in out.gaps] == [
        "its trade ids leave a hole (a reconnect); repaired from binanceus's kline",
        "no trade of it reached the stream; repaired from binanceus's kline"]
    assert [(b.high, b.volume, b.provenance) for b in out.repairs] == [(11.5, 1.5, "exchange-klines"),
                                                                       (11.2, 0.7, "exchange-klines")]
    klines[0][2] = 12.5
    out = Comparison()
    compare("BTC_binanceus", "BTC", "usd", "binanceus", klines[:1], stored, out)
    assert out.mismatches == ["BTC_binanceus 2026-12-07T13:00:00Z: high 12 here, 12.5 on binanceus"]


def test_a_dense_minute_stays_a_few_ranges_and_still_counts_each_trade_id_once():
    minute = new_minute("BTC_binanceus", "BTC", "usd", T0 // 1000)
    rows = [(i, T0 + i // 2, 100.0 + (i % 7), 0.001) for i in range(1, 50_001)]
    for start in range(0, len(rows), 500):  # batches of 500, as the agent takes them
        add_trades(minute, rows[start:start + 500])
    assert not add_trades(minute, rows[1000:1500] + rows[:3])  # a replay, in and out of order
    add_trades(minute, [(60_000, T0 + 59_000, 90.0, 1.0)])  # a hole between 50,000 and 60,000
    assert minute["ids"] == [[1, 50_000], [60_000, 60_000]]
    bar = minute_bar(minute)
    assert (bar.trades, bar.low, bar.close, bar.first_trade_id, bar.last_trade_id) == (50_001, 90.0, 90.0, 1, 60_000)
    assert bar.volume == pytest.approx(51.0)


def test_a_day_merged_from_its_hours_equals_the_day_merged_from_its_minutes():
    rng = random.Random(3)
    day0 = T0 // 86_400_000 * 86_400_000
    trades = [trade(i, day0 + rng.randrange(0, 86_400_000), round(rng.uniform(90, 110), 2), 0.5) for i in range(4000)]
    minutes = list(bars_of(trades).values())
    hours = {}
    for bar in minutes:
        hours.setdefault(bar.start.timestamp() // 3600, []).append(bar)
    by_hours = merge_bars([merge_bars(group, "1h") for group in hours.values()], "1d")
    by_minutes = merge_bars(minutes, "1d")
    assert (by_hours.open, by_hours.high, by_hours.low, by_hours.close, by_hours.trades, by_hours.start) == (
        by_minutes.open, by_minutes.high, by_minutes.low, by_minutes.close, by_minutes.trades, by_minutes.start)
    assert by_hours.volume == pytest.approx(by_minutes.volume) and by_hours.trades == 4000
