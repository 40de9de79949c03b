"""Configuration: environment defaults, coin names, sources, the seed's flags, password masking."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from cryptoapp.coins import Coin, resolve, resolve_all
from cryptoapp.settings import ConfigError, apply_flags, load, parse_symbols
from cryptoapp.settings import dashboard
from cryptoapp.uris import kafka_servers, mask_uri, mongo_servers


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
    ({"CRYPTO_SYMBOLS": "top:0"}, "invalid coin names ['top:0']"),
    ({"CRYPTO_SOURCES": "coingecko,binanceus"}, "CRYPTO_SOURCES='coingecko,binanceus' names unknown sources "
                                                "['binanceus']: use coingecko, simulated, exchange"),
    ({"CRYPTO_SOURCES": "coingecko,simulated"}, "has both coingecko and simulated"),
    ({"CRYPTO_EXCHANGE_MAX_HZ": "0"}, "CRYPTO_EXCHANGE_MAX_HZ='0' must be positive"),
    ({"CRYPTO_EXCHANGE_STALL_S": "soon"}, "CRYPTO_EXCHANGE_STALL_S='soon' is not a number"),
    ({"CRYPTO_EXCHANGE_WS_URL": "http://127.0.0.1:1/ws"}, "is not a WebSocket URL"),
    ({"CRYPTO_EXCHANGE_REST_URL": "127.0.0.1:1"}, "is not an HTTP URL"),
])
def test_bad_settings_name_the_setting(env, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        load(env)


def test_sources_default_to_crypto_source_so_old_configurations_keep_working():
    assert load({}).sources == ("coingecko",) and load({}).polled_source == "coingecko"
    assert load({"CRYPTO_SOURCE": "simulated"}).sources == ("simulated",)
    s = load({"CRYPTO_SOURCES": "coingecko, Exchange,coingecko"})
    assert s.sources == ("coingecko", "exchange") and s.polled_source == "coingecko"
    assert load({"CRYPTO_SOURCES": "exchange"}).polled_source is None
    # Both set: fine when they agree, one line when they do not (CRYPTO_SOURCES replaces CRYPTO_SOURCE).
    assert load({"CRYPTO_SOURCE": "coingecko", "CRYPTO_SOURCES": "coingecko,exchange"}).sources == (
        "coingecko", "exchange")
    with pytest.raises(ConfigError, match="^CRYPTO_SOURCE='simulated' is not among CRYPTO_SOURCES='coingecko,"
                                          "exchange': unset CRYPTO_SOURCE, CRYPTO_SOURCES replaces it$"):
        load({"CRYPTO_SOURCE": "simulated", "CRYPTO_SOURCES": "coingecko,exchange"})


def test_exchange_settings_defaults_and_overrides():
    s = load({})
    assert (s.exchange, s.exchange_max_hz, s.exchange_stall_s) == ("binanceus", 1.0, 30.0)
    assert (s.exchange_ws_url, s.exchange_rest_url, s.coins_cache) == (None, None, ".local/coingecko-coins.json")
    s = load({"CRYPTO_EXCHANGE": " Kraken ", "CRYPTO_EXCHANGE_MAX_HZ": "0.2", "CRYPTO_EXCHANGE_STALL_S": "10",
              "CRYPTO_EXCHANGE_WS_URL": "ws://127.0.0.1:9/ws", "CRYPTO_EXCHANGE_REST_URL": "http://127.0.0.1:9/api/v3/",
              "CRYPTO_COINS_CACHE": "/tmp/coins.json", "CRYPTO_SYMBOLS": "top:20, bitcoin"})
    assert (s.exchange, s.exchange_max_hz, s.exchange_stall_s) == ("kraken", 0.2, 10.0)
    assert (s.exchange_ws_url, s.exchange_rest_url) == ("ws://127.0.0.1:9/ws", "http://127.0.0.1:9/api/v3")
    assert s.coins_cache == "/tmp/coins.json" and s.symbols == ("top:20", "bitcoin")


def test_two_bad_settings_are_each_named():
    with pytest.raises(ConfigError) as err:
        load({"CRYPTO_INTERVAL": "x", "CRYPTO_EXCHANGE_MAX_HZ": "-1"})
    assert "CRYPTO_INTERVAL='x' is not a number" in str(err.value)
    assert "CRYPTO_EXCHANGE_MAX_HZ='-1' must be positive" in str(err.value)


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


def test_dashboard_environment_wins_over_streamlit_secrets_which_win_over_defaults():
    s = dashboard.load({"MONGO_DB": "env", "DASHBOARD_REFRESH": "5"},
                       {"MONGO_DB": "secret", "MONGO_URI": "mongodb://db.example:27018", "CRYPTO_INTERVAL": 2})
    assert (s.mongo_db, s.mongo_uri, s.refresh, s.interval) == ("env", "mongodb://db.example:27018", 5.0, 2.0)


@pytest.mark.parametrize("env, message", [
    ({"MONGO_URI": "localhost:27017"}, "is not a MongoDB URI"),
    ({"DASHBOARD_REFRESH": "0.2"}, "must be at least 1 s"),
    ({"CRYPTO_INTERVAL": "often"}, "is not a number"),
])
def test_unusable_dashboard_settings_are_named(env, message):
    with pytest.raises(ConfigError, match=message):
        dashboard.load(env)


def test_the_dashboard_reads_only_its_own_settings():
    s = dashboard.load({"CRYPTO_SOURCE": "binance", "CRYPTO_FORECASTS": "0", "CRYPTO_CANDLES": "0", "WEB_PORT": "x"})
    assert (s.interval, s.refresh, s.forecasts, s.server) == (60.0, 10.0, False, "localhost:27017")
    assert not hasattr(s, "symbols") and not hasattr(s, "topic")


def test_every_topic_is_named_by_the_worker_settings():
    s = load({})
    assert (s.topic, s.dlq_topic, s.candles_topic, s.alerts_topic) == (
        "crypto-prices", "crypto-prices-dlq", "crypto-candles", "crypto-alerts")
    assert (s.candle_replay_topic, s.candle_clock_topic, s.view_ticks_topic, s.forecast_minutes_topic) == (
        "cryptoapp-candle-replay", "cryptoapp-candle-clock", "cryptoapp-view-ticks", "cryptoapp-forecast-minutes")
    s = load({"CRYPTO_TOPIC": "t1-prices", "CRYPTO_APP_ID": "t1"})
    assert (s.dlq_topic, s.candles_topic, s.alerts_topic, s.view_ticks_topic) == (
        "t1-prices-dlq", "t1-candles", "t1-alerts", "t1-view-ticks")
    assert load({"CRYPTO_ALERTS_TOPIC": "mine"}).alerts_topic == "mine"


def test_importing_the_app_with_a_bad_setting_raises_a_config_error_not_system_exit():
    # A fresh interpreter: this one has imported the app already, with the tests' own settings.
    code = ("import cryptoapp.app, cryptoapp.settings\n"
            "try:\n    from cryptoapp.app import app\n"
            "except cryptoapp.settings.ConfigError as exc:\n    print('ConfigError:', exc)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         cwd=Path(__file__).resolve().parents[2], env={**os.environ, "CRYPTO_INTERVAL": "fast"})
    assert (out.returncode, out.stderr) == (0, "")
    assert out.stdout == "ConfigError: CRYPTO_INTERVAL='fast' is not a number: set it to a number above 0 s\n"


@pytest.mark.parametrize("command", [["-m", "cryptoapp", "worker"], ["-m", "faust", "-A", "cryptoapp.app", "worker"]])
def test_a_bad_setting_stops_the_worker_with_one_line_whichever_command_starts_it(command):
    out = subprocess.run([sys.executable, *command, "-l", "info"], capture_output=True, text=True, timeout=60,
                         cwd=Path(__file__).resolve().parents[2], env={**os.environ, "CRYPTO_PARTITIONS": "0"})
    assert (out.returncode, out.stdout, out.stderr) == (
        1, "", "cryptoapp: CRYPTO_PARTITIONS='0' must be positive: set it to a whole number above 0\n")


@pytest.mark.parametrize("uri, masked", [
    ("mongodb://localhost:27017", "mongodb://localhost:27017"),
    ("mongodb://bob:hunter2@db:27017/crypto", "mongodb://bob:***@db:27017/crypto"),
    ("mongodb+srv://bob:p%40ss@cluster0.example.net/?retryWrites=true",
     "mongodb+srv://bob:***@cluster0.example.net/?retryWrites=true"),
    ("mongodb://bob@h1:1,h2:2/?authMechanismProperties=AWS_SESSION_TOKEN:abc&tlsCertificateKeyFilePassword=x",
     "mongodb://bob@h1:1,h2:2/?authMechanismProperties=***&tlsCertificateKeyFilePassword=***"),
])
def test_passwords_and_credential_options_never_show(uri, masked):
    assert mask_uri(uri) == masked


def test_load_refuses_a_bad_uri_without_echoing_its_password():
    with pytest.raises(ConfigError) as err:
        load({"MONGO_URI": "postgres://bob:hunter2@db/x"})
    assert "hunter2" not in str(err.value)


@pytest.mark.parametrize("uri, address", [
    ("mongodb://localhost", "localhost:27017"),
    ("mongodb://bob:pw@127.0.0.1:1/", "127.0.0.1:1"),
    ("mongodb://h1,h2:27018/?replicaSet=rs", "h1:27017, h2:27018"),
    ("mongodb+srv://bob:pw@cluster0.example.net/", "cluster0.example.net (DNS SRV)"),
])
def test_mongo_servers_names_host_and_port(uri, address):
    assert mongo_servers(uri) == address


def test_kafka_servers_read_like_faust_reads_them():
    assert kafka_servers("kafka://localhost:9092") == ["localhost:9092"]
    assert kafka_servers("kafka://b1:19092;kafka://b2") == ["b1:19092", "b2:9092"]
    assert kafka_servers("b1,b2:9093") == ["b1:9092", "b2:9093"]


def test_settings_never_print_credentials():
    s = load({"MONGO_URI": "mongodb://app:s3cret@db/?authMechanismProperties=AWS_SESSION_TOKEN:tok",
              "COINGECKO_API_KEY": "CG-key"})
    assert "s3cret" not in repr(s) and "tok" not in repr(s) and "CG-key" not in repr(s)
    assert s.api_key == "CG-key" and s.server == "db:27017"


def test_forecast_settings_defaults_overrides_and_errors():
    s = load({})
    assert (s.forecasts, s.forecast_horizons, s.forecast_models, s.forecast_window) == (
        True, (5, 60), ("linear", "snarimax"), 500)
    s = load({"CRYPTO_FORECASTS": "0", "CRYPTO_FORECAST_HORIZONS": "60, 15 15", "CRYPTO_FORECAST_MODELS": "snarimax",
              "CRYPTO_FORECAST_WINDOW": "1000"})
    assert (s.forecasts, s.forecast_horizons, s.forecast_models, s.forecast_window) == (
        False, (15, 60), ("snarimax",), 1000)
    assert load({"CRYPTO_CANDLES": "0"}).forecasts  # on by default, they follow the candles: no error
    for env, message in [
        ({"CRYPTO_FORECAST_HORIZONS": "5,x"}, "CRYPTO_FORECAST_HORIZONS='5,x' is not a list of minutes: give whole "
                                              "minutes >= 1, comma separated (e.g. 5,60)"),
        ({"CRYPTO_FORECAST_MODELS": "linear,lstm"}, "CRYPTO_FORECAST_MODELS='linear,lstm' names no model kinds "
                                                    "['lstm']: choose from linear, snarimax, comma separated"),
        ({"CRYPTO_FORECAST_WINDOW": "0"}, "CRYPTO_FORECAST_WINDOW='0' must be positive: set it to a whole number above 0"),
        ({"CRYPTO_FORECASTS": "maybe"}, "CRYPTO_FORECASTS='maybe' is neither on nor off: use 1 or 0 (true/false, yes/no)"),
        ({"CRYPTO_FORECASTS": "1", "CRYPTO_CANDLES": "0"}, "CRYPTO_FORECASTS=1 needs the candles (the forecasters "
                                                           "learn from their closed minute bars): set CRYPTO_CANDLES=1, "
                                                           "or CRYPTO_FORECASTS=0"),
    ]:
        with pytest.raises(ConfigError, match="^" + re.escape(message) + "$"):
            load(env)


def test_several_exchanges_and_their_own_url_overrides():
    from cryptoapp.settings.exchanges import endpoint_overrides
    assert load({}).exchanges == ("binanceus",)
    assert load({"CRYPTO_EXCHANGE": "Kraken"}).exchanges == ("kraken",)
    assert load({"CRYPTO_EXCHANGES": "binanceus, Kraken,kraken coinbase"}).exchanges == (
        "binanceus", "kraken", "coinbase")
    env = {"CRYPTO_EXCHANGE_WS_URL_KRAKEN": "ws://127.0.0.1:1/v2", "CRYPTO_EXCHANGE_REST_URL_KRAKEN": "http://h/0/"}
    assert endpoint_overrides("kraken", False, "ws://first/ws", "http://first/api/v3", env) == (
        "ws://127.0.0.1:1/v2", "http://h/0")
    assert endpoint_overrides("binanceus", True, "ws://first/ws", "http://first/api/v3", env) == (
        "ws://first/ws", "http://first/api/v3")  # the single/first exchange keeps CRYPTO_EXCHANGE_WS_URL
    assert endpoint_overrides("coinbase", False, "ws://first/ws", None, env) == (None, None)
    with pytest.raises(ConfigError, match="^CRYPTO_EXCHANGE_WS_URL_KRAKEN='http://x' is not a WebSocket URL"):
        endpoint_overrides("kraken", False, None, None, {"CRYPTO_EXCHANGE_WS_URL_KRAKEN": "http://x"})
