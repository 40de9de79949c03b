"""Parsing CoinGecko's /simple/price answer (shapes from shared/reference/), nulls and missing coins included."""

import copy
import datetime as dt

import pytest

from cryptoapp.coins import resolve_all
from cryptoapp.schema import DEFAULT_SYMBOLS
from cryptoapp.sources.coingecko_answers import SourceError, parse_simple_price, simple_price_params
from tests.support.fake_coingecko import reference

UTC = dt.timezone.utc
COINS = resolve_all(DEFAULT_SYMBOLS)
NOW = dt.datetime(2024, 3, 25, 8, 45, 5, tzinfo=UTC)


@pytest.fixture
def answer():
    return copy.deepcopy(reference("coingecko-simple-price.json"))


def test_reference_answer_gives_one_tick_per_coin(answer):
    ticks, skipped = parse_simple_price(answer, COINS, NOW)
    assert skipped == {}
    assert [t.ticker for t in ticks] == ["BTC", "ETH", "BNB", "USDT", "USDC"]
    btc = ticks[0]
    assert btc.value == 67187.3358936566 and btc.timestamp == dt.datetime(2024, 3, 25, 8, 45, tzinfo=UTC)
    assert (btc.volume_24h, btc.change_24h_pct, btc.market_cap) == (31260929299.52484, 3.637278946773539,
                                                                    1317802988326.2493)
    assert (btc.bid_price, btc.ask_price, btc.source, btc.fetched_at) == (None, None, "coingecko", NOW)


def test_missing_optional_numbers_stay_null(answer):
    answer["ethereum"] = {"usd": 3470.5, "usd_24h_vol": None, "last_updated_at": 1711356297}
    eth = parse_simple_price(answer, COINS, NOW)[0][1]
    assert (eth.value, eth.volume_24h, eth.change_24h_pct, eth.market_cap) == (3470.5, None, None, None)


@pytest.mark.parametrize("entry, reason", [
    ({"usd": None, "last_updated_at": 1711356300}, "not a number"),
    ({"usd": 0, "last_updated_at": 1711356300}, "not positive"),
    ({"usd": -5.0, "last_updated_at": 1711356300}, "not positive"),
    ({"usd": float("nan"), "last_updated_at": 1711356300}, "not a number"),
    ({"usd": "67000", "last_updated_at": 1711356300}, "not a number"),
    ({"usd": 67000.0}, "last_updated_at"),
    ({}, "not in the answer"),
])
def test_bad_coin_is_skipped_with_its_reason_and_the_rest_go_on(answer, entry, reason):
    answer["bitcoin"] = entry
    ticks, skipped = parse_simple_price(answer, COINS, NOW)
    assert reason in skipped["BTC"]
    assert [t.ticker for t in ticks] == ["ETH", "BNB", "USDT", "USDC"]


def test_absurd_jump_from_the_last_value_is_skipped(answer):
    ticks, skipped = parse_simple_price(answer, COINS, NOW, last_values={"BTC": 67187.0 / 60, "ETH": 3400.0})
    assert "50x" in skipped["BTC"] and "ETH" not in skipped


def test_unknown_coin_is_missing_from_the_answer(answer):
    coins = resolve_all(["bitcoin", "notacoin"])
    ticks, skipped = parse_simple_price(answer, coins, NOW)
    assert [t.ticker for t in ticks] == ["BTC"] and "'notacoin' is not in the answer" in skipped["NOTACOIN"]


def test_answer_that_is_not_an_object_is_an_error():
    with pytest.raises(SourceError, match="not an object"):
        parse_simple_price(["bitcoin"], COINS, NOW)


def test_one_call_asks_for_every_coin_and_every_field():
    assert simple_price_params(COINS) == {
        "ids": "bitcoin,ethereum,binancecoin,tether,usd-coin", "vs_currencies": "usd",
        "include_market_cap": "true", "include_24hr_vol": "true", "include_24hr_change": "true",
        "include_last_updated_at": "true", "precision": "full"}
