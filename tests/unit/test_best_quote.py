"""The best bid and ask across exchanges (cryptoapp/prices/best.py): stale quotes out, ties, a crossed book, one side."""

import datetime as dt

import pytest

from cryptoapp.prices.best import Quote, best_quote

NOW = dt.datetime(2026, 12, 7, 12, 0, 0, tzinfo=dt.timezone.utc)


def q(exchange, bid, ask, age_s=1.0):
    return Quote(exchange, bid, ask, NOW - dt.timedelta(seconds=age_s))


def test_best_bid_and_ask_come_from_different_exchanges_with_the_spread_in_bps_of_the_mid():
    best = best_quote("BTC", [q("binanceus", 100.0, 101.0), q("kraken", 100.5, 101.5, 2.5)], NOW)
    assert (best["best_bid"], best["best_bid_exchange"], best["best_ask"], best["best_ask_exchange"]) == (
        100.5, "kraken", 101.0, "binanceus")
    assert best["spread"] == 0.5 and best["spread_bps"] == pytest.approx(0.5 / 100.75 * 10_000)
    assert best["crossed"] is False
    assert [(x["exchange"], x["age_s"], x["used"]) for x in best["quotes"]] == [("binanceus", 1.0, True),
                                                                              ("kraken", 2.5, True)]


def test_a_quote_older_than_the_max_age_is_left_out_but_listed():
    best = best_quote("BTC", [q("binanceus", 100.0, 101.0), q("kraken", 200.0, 100.5, 10.5)], NOW, max_age_s=10)
    assert (best["best_bid_exchange"], best["best_ask_exchange"]) == ("binanceus", "binanceus")
    assert best["quotes"][1]["used"] is False


def test_a_tie_goes_to_the_exchange_listed_first():
    best = best_quote("BTC", [q("binanceus", 100.0, 101.0), q("kraken", 100.0, 101.0)], NOW)
    assert (best["best_bid_exchange"], best["best_ask_exchange"]) == ("binanceus", "binanceus")


def test_a_crossed_book_has_a_negative_spread_said_so():
    best = best_quote("BTC", [q("binanceus", 100.0, 100.2), q("kraken", 100.4, 100.6)], NOW)
    assert best["spread"] == pytest.approx(-0.2) and best["spread_bps"] < 0 and best["crossed"] is True


def test_one_exchange_only_and_no_fresh_quote():
    one = best_quote("BTC", [q("binanceus", 100.0, None)], NOW)
    assert (one["best_bid"], one["best_ask"], one["spread"], one["spread_bps"], one["crossed"]) == (
        100.0, None, None, None, False)
    none = best_quote("BTC", [q("binanceus", 100.0, 101.0, 60)], NOW)
    assert (none["best_bid"], none["best_bid_exchange"], none["best_ask"], none["spread_bps"]) == (None, None, None, None)


def test_quotes_in_another_currency_are_never_compared():
    quotes = [Quote("binanceus", 100.0, 101.0, NOW, "usdt"), Quote("kraken", 100.5, 100.8, NOW, "usd")]
    best = best_quote("BTC", quotes, NOW)
    assert (best["currency"], best["best_bid_exchange"], best["best_ask_exchange"]) == ("usdt", "binanceus", "binanceus")
    assert [x["used"] for x in best["quotes"]] == [True, False]
    assert best_quote("BTC", quotes, NOW, currency="usd")["best_bid_exchange"] == "kraken"
