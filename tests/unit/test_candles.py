"""Bars and rings without services: a bar is a function of its set of ticks (any order, a tick twice counts once, the
archive's precedence at one time), coarse bars merge minutes exactly, and the rings keep what a chart reads."""

import datetime as dt
import json
import math
import random

import pytest

from cryptoapp.candles.bars import (
    BarAccumulator, Minute, StoredTick, bars_from_minutes, merge, minutes_from_ticks, parents)
from cryptoapp.candles.models import bar_from_json, bar_to_json, time_ms
from cryptoapp.candles.rings import RING_SIZE, TICK_RING_SIZE, BarRing, TickRing, view_id
from cryptoapp.schema import COINGECKO, COINGECKO_BACKFILL, UTC, candle_id

T0 = dt.datetime(2025, 11, 21, 10, 0, tzinfo=UTC)


def tick(seconds: float, value: float, source: str = COINGECKO, ticker: str = "BTC", volume: float = 1e9):
    return StoredTick(ticker, source, T0 + dt.timedelta(seconds=seconds), value, volume, "usd")


def walk(n: int, step_s: float, seed: int = 1) -> list[StoredTick]:
    rng, price, out = random.Random(seed), 87000.0, []
    for i in range(n):
        price *= math.exp(rng.gauss(0, 0.001))
        out.append(tick(i * step_s, price, volume=1e9 + i))
    return out


def test_a_minute_bar_is_the_open_high_low_close_of_its_ticks():
    (minute,) = minutes_from_ticks([tick(5, 100.0), tick(50, 90.0), tick(20, 130.0), tick(59.5, 110.0)]).values()
    bar = minute.bar()
    assert (bar.open, bar.high, bar.low, bar.close, bar.ticks) == (100.0, 130.0, 90.0, 110.0, 4)
    assert bar.id == candle_id("BTC", "1m", T0) == "BTC_1m_2025-11-21T10:00:00Z"
    assert bar.first_at == T0 + dt.timedelta(seconds=5) and bar.last_at == T0 + dt.timedelta(seconds=59.5)


def test_order_does_not_matter_and_a_tick_seen_twice_counts_once():
    ticks = walk(600, 7)
    forward = bars_from_minutes(minutes_from_ticks(ticks).values())
    shuffled = ticks + ticks[:100]
    random.Random(3).shuffle(shuffled)
    assert bars_from_minutes(minutes_from_ticks(shuffled).values()) == forward
    assert sum(b.ticks for b in forward.values() if b.resolution == "1h") == 600


def test_at_one_time_a_live_tick_replaces_a_backfilled_one_but_never_the_reverse():
    minute = Minute("BTC", "BTC", int(T0.timestamp()), "usd")
    at = time_ms(T0)
    assert minute.absorb(at, 100.0, None, COINGECKO_BACKFILL, "5m")
    assert minute.absorb(at, 101.0, None, COINGECKO)          # live replaces backfill, as the archive's upsert does
    assert not minute.absorb(at, 99.0, None, COINGECKO_BACKFILL, "5m")  # never replaces (insert-if-absent)
    assert not minute.absorb(at, 101.0, None, COINGECKO)      # the same observation again: a redelivery
    assert minute.bar().close == 101.0 and minute.bar().ticks == 1 and minute.bar().sources == (COINGECKO,)


def test_coarse_bars_are_exactly_the_bars_of_all_their_ticks():
    ticks = walk(3000, 29)
    bars = bars_from_minutes(minutes_from_ticks(ticks).values())
    hour = T0.replace(minute=0)
    in_hour = [t for t in ticks if hour <= t.timestamp < hour + dt.timedelta(hours=1)]
    bar = bars[candle_id("BTC", "1h", hour)]
    assert (bar.open, bar.close) == (in_hour[0].value, in_hour[-1].value)
    assert (bar.high, bar.low, bar.ticks) == (max(t.value for t in in_hour), min(t.value for t in in_hour), len(in_hour))
    assert bar.volume_24h == in_hour[-1].volume_24h
    assert {b.resolution for b in bars.values()} == {"1m", "5m", "1h", "1d"}


def test_compacting_a_dense_minute_keeps_its_bar_and_its_parents_exact():
    ticks = walk(60, 1)
    (minute,) = minutes_from_ticks(ticks).values()
    before = minute.bar()
    minute.compact()
    assert len(minute.ticks) <= 4 and minute.dropped == 60 - len(minute.ticks)
    assert minute.bar() == before
    assert not minute.absorb(time_ms(ticks[30].timestamp), ticks[30].value, None, COINGECKO)  # a redelivered tick
    assert minute.bar() == before


def test_a_minute_of_a_500_hz_feed_stays_small_and_exact_redelivered_or_not():
    ticks = walk(30_000, 0.002)[:30_000]  # 500 ticks a second for a minute, in order, as one partition brings them
    minute = Minute("BTC", "BTC", int(T0.timestamp()), "usd")
    for t in ticks + ticks[:5000]:  # the first 5,000 again: a redelivery after a crash
        minute.absorb(time_ms(t.timestamp), t.value, t.volume_24h, t.source)
        minute.keep_bounded()
    (exact,) = minutes_from_ticks(ticks).values()
    assert minute.bar() == exact.bar() and exact.bar().ticks == 30_000
    assert len(json.dumps(minute.to_json())) < 20_000  # one changelog message, far under Kafka's 1 MB


def test_parents_of_a_minute():
    start = int((T0 + dt.timedelta(hours=5, minutes=37)).timestamp())
    p = parents(start)
    assert dt.datetime.fromtimestamp(p["5m"], UTC) == T0 + dt.timedelta(hours=5, minutes=35)
    assert dt.datetime.fromtimestamp(p["1h"], UTC) == T0 + dt.timedelta(hours=5)
    assert dt.datetime.fromtimestamp(p["1d"], UTC) == T0.replace(hour=0)


def test_a_bar_travels_on_the_topic_unchanged():
    bar = merge([m.bar() for m in minutes_from_ticks(walk(20, 3)).values()], "5m")
    assert bar_from_json(bar_to_json(bar, closed=True)) == (bar, True)


def test_a_bar_ring_keeps_the_newest_bars_in_their_slots_and_survives_its_document():
    bars = sorted((b for b in bars_from_minutes(minutes_from_ticks(walk(2500, 60)).values()).values()
                   if b.resolution == "1m"), key=lambda b: b.start)
    ring = BarRing("BTC", "BTC", "1m")
    for bar in bars:
        ring.put(bar)
    assert not ring.put(bars[0])  # an older bar never overwrites the newer one in its slot
    rows = BarRing.from_document(ring.document(T0)).rows()
    assert len(rows) == RING_SIZE["1m"] and rows[-1]["close"] == bars[-1].close
    assert [r["timestamp"] for r in rows] == [b.start for b in bars[-RING_SIZE["1m"]:]]
    assert rows[0]["sources"] == [COINGECKO] and ring.document(T0)["_id"] == view_id("BTC", "1m") == "BTC_1m"


def test_a_tick_ring_holds_the_newest_ticks_in_order_with_their_nulls():
    ring = TickRing("BTC", "BTC")
    for i in range(TICK_RING_SIZE + 10):
        ring.add(time_ms(T0) + i * 1000, {"value": 100.0 + i, "bid_price": None}, COINGECKO, None)
    ring.add(time_ms(T0) + 50_000, {"value": 1.0}, COINGECKO_BACKFILL, "5m")  # never replaces a live tick
    rows = TickRing.from_document(ring.document(T0)).rows()
    assert len(rows) == TICK_RING_SIZE and rows[0]["value"] == 110.0 and rows[-1]["value"] == 100.0 + TICK_RING_SIZE + 9
    assert rows[0]["bid_price"] is None and rows[0]["source"] == COINGECKO and rows[0]["granularity"] is None


@pytest.mark.parametrize("value", [None, 0, -5.0, "87000"])
def test_a_stored_document_without_a_usable_price_makes_no_bar(value):
    doc = {"sensor_id": "BTC", "source": COINGECKO, "timestamp": T0, "value": value}
    assert StoredTick.from_document(doc) is None


def test_the_archive_accumulator_makes_the_same_bars_as_the_stream_without_holding_the_ticks():
    ticks = walk(5000, 23) + [tick(7, 5.0, COINGECKO_BACKFILL, ticker="ETH")]
    random.Random(5).shuffle(ticks)
    acc = BarAccumulator()
    for t in ticks:
        acc.add(t)
    assert acc.bars() == bars_from_minutes(minutes_from_ticks(ticks).values())
    recent = BarAccumulator(since={"1m": (T0 + dt.timedelta(hours=12)).timestamp()})
    for t in ticks:
        recent.add(t)
    assert min(b.start for b in recent.bars().values() if b.resolution == "1m") >= T0 + dt.timedelta(hours=12)
    assert {b.id for b in recent.bars().values() if b.resolution != "1m"} == \
        {b.id for b in acc.bars().values() if b.resolution != "1m"}


def test_a_coarse_bar_folded_minute_by_minute_equals_the_merge_of_its_minutes():
    # The stream folds each batch's changed minutes into the 5m/1h/1d bars it holds (bars.fold) instead of merging
    # every minute again: for any order of ticks, any batches, the folded bar is the merged one, to the last field.
    import random

    from cryptoapp.candles.bars import fold, grew

    rng = random.Random(7)
    for _ in range(200):
        start = 1_764_000_000 // 3600 * 3600
        minutes: dict[int, Minute] = {}
        held = None
        for _batch in range(rng.randint(1, 12)):
            changed = {}
            for _tick in range(rng.randint(1, 8)):
                m = start + rng.randrange(60) * 60
                minute = minutes.setdefault(m, Minute("BTC", "BTC", m, "usd"))
                old = changed.get(m, (None, minute.bar() if minute.ticks else None))[1]
                source = rng.choice(["coingecko", "coingecko-backfill"])
                minute.absorb(m * 1000 + rng.randrange(60_000), rng.uniform(90, 110), rng.uniform(1, 2), source,
                              "5m" if source == "coingecko-backfill" else None)
                changed[m] = (old, old)
            for m, (old, _) in sorted(changed.items()):  # as CandleStage: one that did not only grow merges afresh
                new = minutes[m].bar()
                held = fold(held, old, new) if held is not None and grew(old, new) else None
            if held is None:
                held = merge([minutes[k].bar() for k in sorted(minutes)], "1h")
            assert held == merge([minutes[k].bar() for k in sorted(minutes)], "1h")


def test_the_tick_ring_drops_its_oldest_tick_whatever_order_the_ticks_came_in():
    ring = TickRing("BTC", "BTC")
    for t in range(0, 2 * (TICK_RING_SIZE + 5), 2):  # in order: the five oldest are dropped as the newest come
        ring.add(t, {"value": 1.0}, "coingecko", None)
    assert len(ring.ticks) == TICK_RING_SIZE and ring.oldest().timestamp() * 1000 == 10
    late = TICK_RING_SIZE + 1
    ring.add(late, {"value": 2.0}, "coingecko", None)  # late: between two held ticks, so the oldest (10) goes
    for t in (2 * (TICK_RING_SIZE + 5), 2 * (TICK_RING_SIZE + 6)):  # then two newer ones: 12 and 14 go
        ring.add(t, {"value": 3.0}, "coingecko", None)
    kept = [row["timestamp"].timestamp() * 1000 for row in TickRing.from_document(ring.document(T0)).rows()]
    assert len(kept) == TICK_RING_SIZE and kept == sorted(kept)
    assert kept[0] == 16 and late in kept


def test_a_trade_bars_own_volume_and_vwap_travel_through_the_ring_and_older_rings_read_as_none():
    import dataclasses

    from cryptoapp.candles.view_docs import columns

    bar = merge([m.bar() for m in minutes_from_ticks(walk(20, 3)).values()], "5m")
    traded = dataclasses.replace(bar, volume=2.0, quote_volume=200_000.0, vwap=100_000.0, provenance="trades")
    ring = BarRing("BTC_binanceus", "BTC", "5m", source="binanceus")
    ring.put(traded)
    doc = ring.document(T0)
    row = BarRing.from_document(doc).rows()[-1]
    assert (row["quote_volume"], row["vwap"]) == (200_000.0, 100_000.0)
    older = {k: v for k, v in doc.items() if k not in ("qv", "w")}  # a ring saved before the two arrays existed
    row = BarRing.from_document(older).rows()[-1]
    assert row["quote_volume"] is None and row["vwap"] is None and row["close"] == bar.close
    assert all(math.isnan(x) for x in columns(older)["qv"])
