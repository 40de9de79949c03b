"""PriceTick: the deterministic _id, the stored document, the newest-wins rule and message parsing."""

import datetime as dt
import json

import pytest

from cryptoapp.prices.models import InvalidTick, PriceTick, decode_tick
from cryptoapp.schema import is_series_id, one_tick_per_id, parse_series_id, series_id, tick_id
from cryptoapp.storage.ticks import to_document

UTC = dt.timezone.utc
T0 = dt.datetime(2025, 11, 21, 10, tzinfo=UTC)


def tick(**overrides):
    return PriceTick(**{"ticker": "BTC", "timestamp": T0, "value": 81450.5, "source": "coingecko", **overrides})


def test_id_is_ticker_and_source_time_in_utc():
    assert tick_id("BTC", T0) == "BTC_2025-11-21T10:00:00Z"
    plus_one = dt.timezone(dt.timedelta(hours=1))
    assert tick_id("ETH", dt.datetime(2025, 11, 21, 11, tzinfo=plus_one)) == "ETH_2025-11-21T10:00:00Z"
    # Sub-second sources keep their milliseconds, as a BSON date does, so fast ticks stay distinct.
    assert tick_id("BTC", T0.replace(microsecond=123456)) == "BTC_2025-11-21T10:00:00.123Z"


def test_sources_other_than_coingecko_never_share_its_ids():
    assert tick(source="coingecko-backfill").tick_id == tick(source="simulated").tick_id == "BTC_2025-11-21T10:00:00Z"
    assert tick(source="binanceus").tick_id == "BTC_binanceus_2025-11-21T10:00:00Z"


@pytest.mark.parametrize("ticker, source, series", [("BTC", "coingecko", "BTC"), ("BTC", "simulated", "BTC"),
                                                    ("ETH", "coingecko-backfill", "ETH"),
                                                    ("BTC", "binanceus", "BTC_binanceus")])
def test_a_series_id_parses_back_into_its_ticker_and_exchange(ticker, source, series):
    assert series_id(ticker, source) == series and is_series_id(series)
    assert parse_series_id(series) == (ticker, None if series == ticker else source)


@pytest.mark.parametrize("value", ["btc", "", "BTC ", "A" * 16, "BTC|ETH", "BTC_Binance US", "BTC_", None, 7])
def test_what_series_id_never_makes_is_no_series_id(value):
    assert not is_series_id(value)


def test_document_has_the_design_schema_and_nulls_for_what_the_source_lacks():
    now = dt.datetime(2025, 11, 21, 10, 0, 2, 431000, tzinfo=UTC)
    doc = to_document(tick(volume_24h=31260929299.5, change_24h_pct=3.64, market_cap=1317802988326.2), now)
    assert doc == {
        "_id": "BTC_2025-11-21T10:00:00Z", "timestamp": T0, "value": 81450.5, "sensor_id": "BTC",
        "bid_price": None, "ask_price": None, "bid_size": None, "ask_size": None, "volume_24h": 31260929299.5, "change_24h_pct": 3.64,
        "market_cap": 1317802988326.2, "currency": "usd", "source": "coingecko", "inserted_at": now}
    assert to_document(tick(granularity="5m", source="coingecko-backfill"), now)["granularity"] == "5m"


def test_an_exchange_tick_keeps_its_quote_sizes_and_its_source_in_the_id():
    now = T0 + dt.timedelta(seconds=1)
    t = tick(source="binanceus", timestamp=T0.replace(microsecond=123000), currency="usdt", bid_price=81450.4,
             ask_price=81450.6, bid_size=1.2, ask_size=0.41)
    doc = to_document(t, now)
    assert doc["_id"] == "BTC_binanceus_2025-11-21T10:00:00.123Z"
    assert (doc["bid_price"], doc["ask_price"], doc["bid_size"], doc["ask_size"], doc["currency"]) == (
        81450.4, 81450.6, 1.2, 0.41, "usdt")
    assert decode_tick(t.encode()) == t
    # The same moment from CoinGecko is another observation, stored beside it.
    assert tick(timestamp=t.timestamp).tick_id == "BTC_2025-11-21T10:00:00.123Z"


def test_newest_wins():
    older, newer = tick(timestamp=T0 - dt.timedelta(minutes=1)), tick()
    assert newer.is_newer_than(older) and newer.is_newer_than(None)
    assert not older.is_newer_than(newer)
    assert tick(value=1.0).is_newer_than(newer)  # same source time: the later message refreshes it


def test_a_repeated_answer_is_the_same_observation_whenever_it_was_fetched():
    first = tick(volume_24h=1.5, fetched_at=T0 + dt.timedelta(seconds=2))
    assert first.same_observation(tick(volume_24h=1.5, fetched_at=T0 + dt.timedelta(seconds=62)))
    assert not first.same_observation(None)
    assert not first.same_observation(tick(volume_24h=1.6))  # same source time, other figures: stored again
    assert not first.same_observation(tick(volume_24h=1.5, timestamp=T0 + dt.timedelta(minutes=1)))


def test_encode_decode_round_trip():
    t = tick(volume_24h=1.5, fetched_at=T0 + dt.timedelta(seconds=2))
    assert decode_tick(t.encode()) == t
    assert json.loads(t.encode())["timestamp"] == "2025-11-21T10:00:00Z"


@pytest.mark.parametrize("raw, reason", [
    (b"not json", "not JSON"),
    (b"[1, 2]", "not an object"),
    (b'{"value": 1, "timestamp": "2025-11-21T10:00:00Z", "source": "x"}', "ticker"),
    (b'{"ticker": "btc$", "value": 1, "timestamp": "2025-11-21T10:00:00Z", "source": "x"}', "ticker"),
    (b'{"ticker": "BTC", "value": null, "timestamp": "2025-11-21T10:00:00Z", "source": "x"}', "value"),
    (b'{"ticker": "BTC", "value": -3, "timestamp": "2025-11-21T10:00:00Z", "source": "x"}', "not positive"),
    (b'{"ticker": "BTC", "value": "NaN", "timestamp": "2025-11-21T10:00:00Z", "source": "x"}', "value"),
    (b'{"ticker": "BTC", "value": 1, "timestamp": "yesterday", "source": "x"}', "timestamp"),
    (b'{"ticker": "BTC", "value": 1, "timestamp": "2025-11-21T10:00:00", "source": "x"}', "time zone"),
    (b'{"ticker": "BTC", "value": 1, "timestamp": "2025-11-21T10:00:00Z"}', "source"),
    (None, "empty"),
])
def test_poison_messages_are_named(raw, reason):
    with pytest.raises(InvalidTick, match=reason):
        decode_tick(raw)


def test_of_ticks_sharing_an_id_the_last_live_one_is_kept_and_history_never_replaces_a_tick():
    first, last = tick(value=1.0), tick(value=2.0)
    backfilled = tick(value=3.0, source="coingecko-backfill", granularity="5m")
    other = tick(timestamp=T0 + dt.timedelta(minutes=1))
    assert one_tick_per_id([first, backfilled, last, other]) == {first.tick_id: last, other.tick_id: other}
    refilled = tick(value=4.0, granularity="5m")
    assert one_tick_per_id([first, backfilled, refilled]) == {first.tick_id: first}
    assert one_tick_per_id([backfilled, refilled]) == {first.tick_id: refilled}  # no live tick: the last of history
    pairs = [("a", backfilled), ("b", first)]  # the sink's (event, tick) pairs
    assert one_tick_per_id(pairs, tick_of=lambda pair: pair[1]) == {first.tick_id: ("b", first)}
