"""Configuration: environment defaults, coin names, the seed's flags, password masking."""

import pytest

from cryptoapp.coins import Coin, resolve, resolve_all
from cryptoapp.settings import ConfigError, apply_flags, load, mask_uri, parse_symbols


def test_defaults_match_the_design():
    s = load({})
    assert s.kafka_broker == "kafka://localhost:9092"
    assert (s.mongo_uri, s.mongo_db) == ("mongodb://localhost:27017", "crypto")
    assert s.symbols == ("bitcoin", "ethereum", "binancecoin", "tether", "usd-coin")
    assert (s.interval, s.source, s.web_port, s.topic) == (60.0, "coingecko", 6066, "crypto-prices")
    assert s.coingecko_api_url == "https://api.coingecko.com/api/v3" and s.coingecko_api_key is None


def test_environment_overrides():
    s = load({"CRYPTO_SYMBOLS": "BTC, eth solana", "CRYPTO_INTERVAL": "2.5", "CRYPTO_SOURCE": "Simulated",
              "COINGECKO_API_URL": "http://127.0.0.1:9/api/v3/", "WEB_PORT": "7000", "MONGO_DB": "x"})
    assert s.symbols == ("BTC", "eth", "solana") and s.interval == 2.5 and s.source == "simulated"
    assert s.coingecko_api_url == "http://127.0.0.1:9/api/v3" and s.web_port == 7000 and s.mongo_db == "x"


@pytest.mark.parametrize("env, message", [
    ({"CRYPTO_INTERVAL": "fast"}, "CRYPTO_INTERVAL='fast' is not a number"),
    ({"CRYPTO_INTERVAL": "0"}, "must be positive"),
    ({"CRYPTO_SOURCE": "binance"}, "CRYPTO_SOURCE='binance' is unknown"),
    ({"CRYPTO_SYMBOLS": " , "}, "CRYPTO_SYMBOLS is empty"),
    ({"CRYPTO_SYMBOLS": "bitcoin $where"}, "invalid coin names"),
])
def test_bad_settings_name_the_setting(env, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace("$", r"\$")):
        load(env)


def test_seed_flags_override_and_leave_faust_arguments():
    s = load({"CRYPTO_INTERVAL": "60"})
    rest = apply_flags(s, ["worker", "-l", "info", "--symbols", "BTC,ETH", "--interval=5",
                           "--mongo-uri", "mongodb://db:27017"])
    assert rest == ["worker", "-l", "info"]
    assert s.symbols == ("BTC", "ETH") and s.interval == 5.0 and s.mongo_uri == "mongodb://db:27017"
    with pytest.raises(ConfigError, match="--interval needs a value"):
        apply_flags(s, ["--interval"])


def test_coins_resolve_from_ids_or_tickers():
    assert resolve("bitcoin") == resolve("BTC") == resolve("btc") == Coin("bitcoin", "BTC")
    assert resolve("usd-coin") == Coin("usd-coin", "USDC")
    assert resolve("some-new-coin") == Coin("some-new-coin", "SOMENEWCOIN")
    assert resolve_all(["BTC", "bitcoin", "ETH"]) == (Coin("bitcoin", "BTC"), Coin("ethereum", "ETH"))
    assert parse_symbols("bitcoin,bitcoin") == ("bitcoin",)


def test_passwords_are_masked():
    assert mask_uri("mongodb://app:s3cret@db.example.com:27017/crypto") == "mongodb://app:***@db.example.com:27017/crypto"
    assert mask_uri("mongodb+srv://u:p%40ss@cluster0.example.net/") == "mongodb+srv://u:***@cluster0.example.net/"
    assert mask_uri("mongodb://localhost:27017") == "mongodb://localhost:27017"
