"""Requires the running MongoDB server: a ticks ring saved as a small tail between whole saves reads the same as a
ring saved whole after every batch, for the dashboard and for the next worker that takes the series over."""

import datetime as dt

import pytest

from cryptoapp.candles.models import Bar
from cryptoapp.candles.rings import TAIL_SIZE, TICK_RING_SIZE, BarRing, TickRing, view_id
from cryptoapp.candles.serving import ViewWriter
from cryptoapp.schema import COINGECKO, COINGECKO_BACKFILL
from cryptoapp.storage import PriceStore
from dashboard import data

pytestmark = pytest.mark.integration
UTC = dt.timezone.utc
START_MS = 1_765_000_000_000


def row(i: int, source: str = COINGECKO, value: float | None = None, granularity=None) -> tuple:
    """A tick i seconds after START_MS, in put_rows form; every tenth has no bid (a null, not a number)."""
    price = 100.0 + i if value is None else value
    return (START_MS + 1000 * i, (price, None if i % 10 == 0 else price - 0.5, price + 0.5, None, None,
                                  1e9, 0.1, 2e12), source, granularity)


def held(doc) -> list[tuple]:
    """A ring document's ticks as (time ms, value, bid, source), oldest first."""
    return [(r["timestamp"].timestamp() * 1000, r["value"], r["bid_price"], r["source"])
            for r in TickRing.from_document(doc).rows()]


def expected(rows) -> list[tuple]:
    ring = TickRing("BTC", "BTC")
    for r in rows:
        ring.add_values(*r)
    return held(ring.document(dt.datetime.now(UTC)))


async def test_batches_land_in_the_tail_and_the_ring_is_rewritten_once_per_tail(db, services):
    ident = view_id("BTC", "ticks")
    rows = [row(i) for i in range(TICK_RING_SIZE + 2 * TAIL_SIZE + 50)]
    async with PriceStore(services["mongo_uri"], db.name) as store:
        writer = ViewWriter(store.candles)
        assert await writer.put_rows("BTC", "BTC", "usd", COINGECKO, rows[:TICK_RING_SIZE - 10]) == 1
        for first in range(TICK_RING_SIZE - 10, len(rows), 7):
            assert await writer.put_rows("BTC", "BTC", "usd", COINGECKO, rows[first:first + 7]) == 1
            assert held(data._view(db, "BTC", "ticks")) == expected(rows[:first + 7])
        # Whole saves: the first batch, then one each time the tail filled (TAIL_SIZE ticks, whole batches).
        assert db.views.find_one({"_id": ident})["rev"] == 1 + (len(rows) - TICK_RING_SIZE + 10) // (TAIL_SIZE + 5)
        assert len(TickRing.from_document(db.view_tails.find_one({"_id": ident})).ticks) <= TAIL_SIZE

        # Another worker takes the series over mid-tail: it reads ring and tail, and goes on from both.
        late = [row(50, value=1.0, source=COINGECKO), row(len(rows) + 1), row(len(rows) + 3),
                row(len(rows) + 2, source=COINGECKO_BACKFILL, granularity="5m")]
        successor = ViewWriter(store.candles)
        assert await successor.put_rows("BTC", "BTC", "usd", COINGECKO, late) == 1
        got = held(data._view(db, "BTC", "ticks"))
        assert got == expected(rows + late) and len(got) == TICK_RING_SIZE

        # The old owner's next write is refused (the tail moved on), reloads, and loses nothing of either.
        assert await writer.put_rows("BTC", "BTC", "usd", COINGECKO, [row(len(rows) + 5)]) == 1
        assert held(data._view(db, "BTC", "ticks")) == expected(rows + late + [row(len(rows) + 5)])


async def test_a_ring_saved_whole_by_a_rebuild_makes_the_older_tail_count_no_more(db, services):
    async with PriceStore(services["mongo_uri"], db.name) as store:
        writer = ViewWriter(store.candles)
        await writer.put_rows("ETH", "ETH", "usd", COINGECKO, [row(0)])
        await writer.put_rows("ETH", "ETH", "usd", COINGECKO, [row(1), row(2)])
        assert [t[0] for t in held(data._view(db, "ETH", "ticks"))] == [START_MS, START_MS + 1000, START_MS + 2000]
        rebuilt = TickRing("ETH", "ETH")
        rebuilt.add_values(*row(0))
        rebuilt.add_values(*row(1, value=7.0))
        rebuilder = ViewWriter(store.candles)
        assert await rebuilder.update(view_id("ETH", "ticks"), lambda: TickRing("ETH", "ETH"),
                                      lambda ring: ring.add_values(*row(1, value=7.0)))
        # The rebuild read the ring with its tail (three ticks), changed one, saved it whole: the tail is spent.
        assert [t[1] for t in held(data._view(db, "ETH", "ticks"))] == [100.0, 7.0, 102.0]
        assert await writer.put_rows("ETH", "ETH", "usd", COINGECKO, [row(3)]) == 1
        assert [t[1] for t in held(data._view(db, "ETH", "ticks"))] == [100.0, 7.0, 102.0, 103.0]


async def test_open_bars_go_to_the_tail_and_read_as_the_ring_holding_them(db, services):
    minute = dt.datetime(2026, 12, 7, 10, 0, tzinfo=UTC)

    def bar(i: int, close: float, ticks: int = 3) -> Bar:
        return Bar(series="BTC", ticker="BTC", resolution="1m", start=minute + dt.timedelta(minutes=i),
                   open=100.0, high=max(close, 100.0), low=min(close, 100.0), close=close, ticks=ticks,
                   volume_24h=None, sources=(COINGECKO,), currency="usd", first_at=minute, last_at=minute)

    async with PriceStore(services["mongo_uri"], db.name) as store:
        writer = ViewWriter(store.candles)
        truth = BarRing("BTC", "BTC", "1m")
        for i in range(3 * TAIL_SIZE):
            # The open minute changes in every batch; a minute closes now and then, one bar a batch.
            for close in (101.0 + i, 99.0 + i):
                assert await writer.put_bars([bar(i, close)]) == 1
                truth.put(bar(i, close))
            if i % 37 == 0:
                rows = BarRing.from_document(data._view(db, "BTC", "1m")).rows()
                assert rows == truth.rows() and rows[-1]["close"] == 99.0 + i
        assert db.views.find_one({"_id": "BTC_1m"})["rev"] <= 4  # saved whole once per TAIL_SIZE minutes
        assert BarRing.from_document(data._view(db, "BTC", "1m")).rows() == truth.rows()
        # What `candles verify` reads is the same ring.
        assert BarRing.from_document(await store.candles.current_view("BTC_1m")).rows() == truth.rows()
