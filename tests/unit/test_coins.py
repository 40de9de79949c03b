"""Coin resolution: CoinGecko's /coins/markets as a catalogue, tickers for coins sharing a symbol, top:N."""

import datetime as dt

import pytest

from cryptoapp.coins import (Catalogue, Coin, Listing, assign_tickers, parse_coins_markets, parse_top, read_catalogue,
                             resolve, resolve_all, write_catalogue)
from tests.support.fake_coingecko import markets_rows, reference

UTC = dt.timezone.utc
NOW = dt.datetime(2024, 3, 25, 9, tzinfo=UTC)


def catalogue(**given):
    return Catalogue.build(parse_coins_markets(markets_rows()), NOW, given=given)


def test_the_reference_answer_parses():
    [btc] = parse_coins_markets(reference("coingecko-coins-markets.json"))
    assert btc == Listing("bitcoin", "btc", "Bitcoin", 1317802988326.0, 1)


def test_rows_without_id_or_symbol_are_skipped_and_missing_numbers_stay_null():
    rows = [{"id": "x"}, {"symbol": "y"}, "junk", {"id": "new-coin", "symbol": "new", "market_cap": None,
                                                   "market_cap_rank": None}]
    assert parse_coins_markets(rows) == [Listing("new-coin", "new", "new-coin", None, None)]
    with pytest.raises(ValueError, match="not a list"):
        parse_coins_markets({"error": "x"})


def test_two_coins_sharing_a_symbol_are_told_apart_never_merged():
    tickers = assign_tickers([Listing("tokamak-network", "ton", "Tokamak", 1e8, 120),
                              Listing("toncoin", "ton", "Toncoin", 1.8e10, 9)], given={})
    assert tickers == {"toncoin": "TON", "tokamak-network": "TON2"}  # the larger keeps the symbol


def test_a_ticker_once_given_stays_with_its_coin_when_ranks_change():
    later = [Listing("tokamak-network", "ton", "Tokamak", 9e10, 1), Listing("toncoin", "ton", "Toncoin", 1e8, 90)]
    assert assign_tickers(later, given={"toncoin": "TON", "tokamak-network": "TON2"}) == {
        "toncoin": "TON", "tokamak-network": "TON2"}


def test_built_in_tickers_are_fixed_and_odd_symbols_become_tickers():
    tickers = assign_tickers([Listing("fake-btc", "btc", "Fake", 1e12, 1), Listing("long-one", "a.b-c" * 5, "L", 1, 2)],
                             given={"bitcoin": "BTC"})
    assert tickers["bitcoin"] == "BTC" and tickers["fake-btc"] == "BTC2"
    assert tickers["long-one"] == "ABCABCABCABCABC"  # letters and digits, at most 15


def test_names_resolve_by_id_ticker_or_symbol():
    cat = catalogue()
    assert cat.resolve("aptos") == Coin("aptos", "APT")  # outside the built-in list: its real symbol
    assert cat.resolve("APT") == cat.resolve("apt") == Coin("aptos", "APT")
    assert cat.resolve("avalanche-2") == Coin("avalanche-2", "AVAX")  # no longer AVALANCHE2
    assert cat.resolve("TON") == Coin("toncoin", "TON") and cat.resolve("TON2") == Coin("tokamak-network", "TON2")
    assert cat.resolve("tokamak-network") == Coin("tokamak-network", "TON2")
    assert cat.resolve("render-token") == Coin("render-token", "RNDR")
    assert cat.resolve("not-a-coin") == Coin("not-a-coin", "NOTACOIN")  # unknown: taken as an id, as before


def test_top_n_is_the_n_largest_by_market_cap():
    assert [c.ticker for c in resolve_all(["top:5"], catalogue())] == ["BTC", "ETH", "USDT", "BNB", "SOL"]
    assert [c.ticker for c in resolve_all(["top:3", "bitcoin", "aptos"], catalogue())] == ["BTC", "ETH", "USDT",
                                                                                            "APT"]


def test_without_a_catalogue_the_built_in_list_serves_as_before():
    assert resolve_all(["top:3", "BTC"]) == (Coin("bitcoin", "BTC"), Coin("ethereum", "ETH"),
                                             Coin("binancecoin", "BNB"))
    assert resolve("usd-coin") == Coin("usd-coin", "USDC") and resolve("avalanche-2").ticker == "AVAX"
    assert parse_top("TOP:10") == 10 and parse_top("top:0") is None and parse_top("bitcoin") is None


def test_the_cache_round_trips_and_knows_its_age(tmp_path):
    path = tmp_path / "coins.json"
    write_catalogue(path, catalogue())
    cached = read_catalogue(path)
    assert cached == catalogue() and cached.is_fresh(NOW + dt.timedelta(hours=23))
    assert not cached.is_fresh(NOW + dt.timedelta(days=1))
    path.write_text("{broken")
    assert read_catalogue(path) is None and read_catalogue(tmp_path / "none.json") is None


def test_a_coin_the_catalogue_does_not_know_is_left_out_with_one_line_naming_the_nearest_ids():
    from cryptoapp.sources.catalogue import pick_known

    coins, line = pick_known(["bitcoin", "notacoin", "etherium"], None)
    assert coins == (Coin("bitcoin", "BTC"),)
    assert line.startswith("CRYPTO_SYMBOLS names coins not in the built-in list: 'notacoin' (nearest known ids: ")
    assert "'etherium' (nearest known ids: ethereum, tether); left out, pricing BTC." in line
    coins, line = pick_known(["BTC", "FOOBAR", "aptos"], catalogue())
    assert [c.ticker for c in coins] == ["BTC", "APT"]
    assert "not in CoinGecko's list of 2024-03-25: 'FOOBAR' (nearest known ids: none)" in line
    assert pick_known(["top:3", "BTC", "eth"], None) == (resolve_all(["top:3", "eth"]), None)
    assert pick_known(["aptos"], None)[0] == ()  # offline, a coin outside the built-in list is not known either


def test_every_spelling_of_a_known_coin_names_it():
    from cryptoapp.coins import spellings

    names = spellings()
    assert names["bitcoin"] == names["btc"] == Coin("bitcoin", "BTC") and names["avalanche-2"].ticker == "AVAX"
    names = spellings(catalogue())
    assert names["apt"] == names["aptos"] == Coin("aptos", "APT")
    assert names["ton"] == Coin("toncoin", "TON") and names["ton2"] == Coin("tokamak-network", "TON2")
