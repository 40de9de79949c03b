"""The best bid and ask across exchanges (cryptoapp/prices/best.py): freshness, ties, a crossed book, one exchange."""

import datetime as dt

import pytest

from cryptoapp.prices.best import Quote, best
from cryptoapp.prices.models import PriceTick

NOW = dt.datetime(2026, 12, 7, 10, 0, 0, tzinfo=dt.timezone.utc)


def quote(exchange, bid, ask, age_s=1.0, **sizes):
    return Quote(exchange, NOW - dt.timedelta(seconds=age_s), bid, sizes.get("bid_size"), ask, sizes.get("ask_size"),
                 "usd")


def test_the_best_bid_and_ask_come_from_the_exchanges_that_hold_them():
    got = best("BTC", [quote("binanceus", 100.0, 101.0), quote("kraken", 100.5, 101.5),
                       quote("coinbase", 99.0, 100.8)], NOW)
    assert (got.bid.exchange, got.bid.bid) == ("kraken", 100.5)
    assert (got.ask.exchange, got.ask.ask) == ("coinbase", 100.8)
    assert got.spread == pytest.approx(0.3) and got.spread_bps == pytest.approx(1e4 * 0.3 / 100.65)
    doc = got.to_json()
    assert doc["best_bid"]["exchange"] == "kraken" and doc["best_ask"]["age_s"] == 1.0 and not doc["crossed"]
    assert [e["exchange"] for e in doc["exchanges"]] == ["kraken", "binanceus", "coinbase"]


def test_a_stale_quote_is_left_out_and_named():
    got = best("BTC", [quote("binanceus", 100.0, 101.0), quote("kraken", 105.0, 106.0, age_s=30)], NOW,
               max_age_s=10)
    assert got.bid.exchange == "binanceus" and got.to_json()["left_out_stale"] == ["kraken"]


def test_a_crossed_book_is_shown_as_such():
    got = best("BTC", [quote("binanceus", 102.0, 103.0), quote("kraken", 100.0, 101.0)], NOW)
    assert got.spread == pytest.approx(-1.0) and got.spread_bps < 0 and got.to_json()["crossed"]


def test_ties_go_to_the_fresher_quote_then_the_name():
    got = best("BTC", [quote("kraken", 100.0, 101.0, age_s=3), quote("binanceus", 100.0, 101.0, age_s=2),
                       quote("coinbase", 100.0, 101.0, age_s=2)], NOW)
    assert got.bid.exchange == "binanceus" and got.ask.exchange == "binanceus"


def test_one_exchange_or_a_missing_side_gives_nulls_not_inventions():
    only = best("BTC", [quote("binanceus", 100.0, None)], NOW)
    assert only.bid.exchange == "binanceus" and only.ask is None and only.spread is None
    assert only.to_json()["best_ask"] is None and only.to_json()["spread_bps"] is None
    assert best("BTC", [], NOW).to_json()["best_bid"] is None
    assert best("BTC", [quote("kraken", 0.0, float("nan"))], NOW).bid is None


def test_only_exchange_ticks_quote():
    coingecko = PriceTick(ticker="BTC", timestamp=NOW, value=100.0, source="coingecko")
    exchange = PriceTick(ticker="BTC", timestamp=NOW, value=100.0, source="kraken", bid_price=99.5, ask_price=100.5)
    assert Quote.of(coingecko) is None and Quote.of(exchange).bid == 99.5
