"""The exchange source's pure parts: which pair prices a coin, a ccxt ticker as a PriceTick, conflation."""

import datetime as dt

import pytest

from cryptoapp.coins import Coin, resolve_all
from cryptoapp.schema import DEFAULT_SYMBOLS
from cryptoapp.sources.ccxt_stream import ExchangeConfigError, exchange_class
from cryptoapp.sources.markets import (Conflator, InvalidQuote, MarketChoice, choose_markets, event_time_ms,
                                       tick_from_ticker)
from tests.support.fake_coingecko import reference

UTC = dt.timezone.utc
COINS = resolve_all(DEFAULT_SYMBOLS)
NOW = dt.datetime(2024, 3, 25, 8, 45, 1, tzinfo=UTC)


def market(base, quote, active=True, spot=True):
    return {"symbol": f"{base}/{quote}", "base": base, "quote": quote, "active": active, "spot": spot}


def markets(*items):
    return {m["symbol"]: m for m in items}


BINANCE_US = markets(market("BTC", "USD"), market("BTC", "USDT"), market("ETH", "USD", active=False),
                     market("ETH", "USDT"), market("BNB", "USD"), market("USDT", "USD"), market("USDC", "USD"),
                     market("USDC", "USDT"))


def test_usd_pairs_first_a_halted_one_falls_back_to_usdt_and_says_so():
    chosen, left_out = choose_markets(BINANCE_US, COINS)
    assert [(c.coin.ticker, c.symbol, c.quote, c.note) for c in chosen] == [
        ("BTC", "BTC/USD", "USD", None), ("ETH", "ETH/USDT", "USDT", "ETH/USD halted"),
        ("BNB", "BNB/USD", "USD", None), ("USDT", "USDT/USD", "USD", None), ("USDC", "USDC/USD", "USD", None)]
    assert left_out == {}


def test_a_stablecoin_is_never_quoted_in_itself():
    # binance.com: USDT is only ever a quote there; USDT/USDT does not exist and must not be made up.
    chosen, left_out = choose_markets(markets(market("BTC", "USDT"), market("USDC", "USDT")), COINS)
    assert {c.coin.ticker: c.symbol for c in chosen} == {"BTC": "BTC/USDT", "USDC": "USDC/USDT"}
    assert left_out["USDT"] == "no USDT pair against USD"
    assert left_out["ETH"] == "no ETH pair against USD/USDT"


def test_a_coin_whose_pairs_are_all_halted_is_left_out_with_the_reason():
    _, left_out = choose_markets(markets(market("ETH", "USD", False), market("ETH", "USDT", False)), COINS[1:2])
    assert left_out == {"ETH": "ETH/USD, ETH/USDT halted"}


def test_only_spot_markets_count():
    chosen, left_out = choose_markets(markets(market("BTC", "USD", spot=False)), COINS[:1])
    assert chosen == [] and "BTC" in left_out


def ccxt_ticker(**overrides):
    """A ccxt ticker as binanceus's parse_ws_ticker makes it from shared/reference/binance-ws-ticker.json."""
    raw = reference("binance-ws-ticker.json")
    return {"symbol": "BTC/USDT", "timestamp": raw["C"], "bid": 67186.01, "bidVolume": 1.20345, "ask": 67186.02,
            "askVolume": 0.41, "last": 67187.33, "baseVolume": 27342.1128, "quoteVolume": 1810398212.33,
            "percentage": 3.637, "info": raw, **overrides}


BTC_USDT = MarketChoice(Coin("bitcoin", "BTC"), "BTC/USDT", "USDT")


def test_a_ticker_becomes_a_tick_with_real_bid_ask_sizes_and_the_quote_currency():
    tick = tick_from_ticker(ccxt_ticker(), BTC_USDT, "binanceus", NOW)
    assert (tick.ticker, tick.value, tick.source, tick.currency) == ("BTC", 67187.33, "binanceus", "usdt")
    assert (tick.bid_price, tick.ask_price, tick.bid_size, tick.ask_size) == (67186.01, 67186.02, 1.20345, 0.41)
    # The event time E, milliseconds kept; the _id names the source.
    assert tick.timestamp == dt.datetime(2024, 3, 25, 8, 45, 0, 123000, tzinfo=UTC)
    assert tick.tick_id == "BTC_binanceus_2024-03-25T08:45:00.123Z"
    # Volume in the quote currency (q), like `value`; the base volume v would count coins.
    assert (tick.volume_24h, tick.change_24h_pct, tick.market_cap, tick.fetched_at) == (
        1810398212.33, 3.637, None, NOW)


def test_event_time_is_binances_E_and_ccxts_timestamp_only_for_other_exchanges():
    raw = reference("binance-ws-ticker.json")
    assert event_time_ms(ccxt_ticker(timestamp=1, info={**raw, "E": 1711356300999})) == 1711356300999
    assert event_time_ms(ccxt_ticker(info={})) == 1711356300123  # another exchange's message: ccxt's time
    with pytest.raises(InvalidQuote, match="no event time"):
        event_time_ms(ccxt_ticker(timestamp=None, info={}))


def test_a_24hr_ticker_without_E_or_c_is_skipped_not_stamped_or_priced_by_ccxt():
    # ccxt would stamp the statistics close time C and rebuild the price as open + change: neither was observed.
    raw = {k: v for k, v in reference("binance-ws-ticker.json").items() if k != "E"}
    with pytest.raises(InvalidQuote, match="no event time E"):
        tick_from_ticker(ccxt_ticker(info=raw), BTC_USDT, "binanceus", NOW)
    raw = {k: v for k, v in reference("binance-ws-ticker.json").items() if k != "c"}
    with pytest.raises(InvalidQuote, match="last price None"):
        tick_from_ticker(ccxt_ticker(last=67187.33, info=raw), BTC_USDT, "binanceus", NOW)
    tick = tick_from_ticker(ccxt_ticker(last=1.0, info={**raw, "c": "67190.5"}), BTC_USDT, "binanceus", NOW)
    assert tick.value == 67190.5  # the message's own last price, whatever ccxt made of it


def test_missing_sides_and_numbers_stay_null():
    tick = tick_from_ticker(ccxt_ticker(bid=None, bidVolume=0.0, ask=float("nan"), quoteVolume=None,
                                        percentage=None), BTC_USDT, "binanceus", NOW)
    assert (tick.bid_price, tick.bid_size, tick.ask_price, tick.ask_size) == (None, None, None, None)
    assert (tick.volume_24h, tick.change_24h_pct) == (None, None)


@pytest.mark.parametrize("last", [None, 0, -5.0, float("inf"), "67187.33", True])
def test_a_ticker_without_a_usable_last_price_is_refused(last):
    with pytest.raises(InvalidQuote, match="last price"):  # another exchange's message: ccxt's last
        tick_from_ticker(ccxt_ticker(last=last, info={}), BTC_USDT, "kraken", NOW)



@pytest.mark.parametrize("c", [None, "0", "-5.0", "inf", "nan", "abc", 67187.33, True])
def test_a_24hr_ticker_without_a_usable_c_is_refused(c):
    with pytest.raises(InvalidQuote, match="last price"):  # Binance's own c: a positive decimal string
        tick_from_ticker(ccxt_ticker(info={**reference("binance-ws-ticker.json"), "c": c}), BTC_USDT, "binanceus", NOW)


def test_conflation_keeps_the_last_quote_of_each_slot():
    c = Conflator(max_hz=1, grace_s=0.5)
    out = []
    for ms in range(0, 3000, 50):  # 20 quotes a second for 3 s
        out += c.add("BTC", 1_000_000 + ms, ms)
    assert out == [950, 1950]  # two slots closed by the next slot's first quote
    assert c.due(1_003_400) == [] and c.due(1_003_500) == [2950]  # the last one after its slot and the grace
    assert c.due(1_010_000) == []


def test_conflation_is_per_key_and_a_late_quote_never_sends_a_slot_twice():
    c = Conflator(max_hz=2)
    assert c.add("BTC", 100, "b1") == [] and c.add("ETH", 100, "e1") == []
    assert c.add("BTC", 600, "b2") == ["b1"]  # 500 ms slots at 2 Hz
    assert c.add("BTC", 450, "late") == [] and c.late == 1
    assert c.add("BTC", 550, "out of order") == [] and c.add("BTC", 900, "b3") == []
    assert c.add("BTC", 1000, "b4") == ["b3"]  # the latest by event time, not the latest to arrive
    assert sorted(c.due(10_000)) == ["b4", "e1"]


def test_conflation_needs_a_positive_rate():
    with pytest.raises(ValueError):
        Conflator(max_hz=0)


def test_an_unknown_exchange_id_is_one_clear_error():
    with pytest.raises(ExchangeConfigError, match="CRYPTO_EXCHANGE='binance-us' is not an exchange ccxt streams"):
        exchange_class("binance-us")
    assert exchange_class("binanceus").__name__ == "Listenedbinanceus"
