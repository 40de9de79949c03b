"""The dashboard's settings and the way it writes numbers: defaults, secrets, masking, formats."""

import datetime as dt
import math

import pytest

from dashboard import formatting
from dashboard.settings import ConfigError, load, mask_uri, server_address


def test_defaults_match_the_design():
    s = load({})
    assert (s.mongo_uri, s.mongo_db, s.interval, s.refresh) == ("mongodb://localhost:27017", "crypto", 60.0, 10.0)


def test_environment_wins_over_secrets_which_win_over_defaults():
    s = load({"MONGO_DB": "env", "DASHBOARD_REFRESH": "5"},
             {"MONGO_DB": "secret", "MONGO_URI": "mongodb://db.example:27018", "CRYPTO_INTERVAL": 2})
    assert (s.mongo_db, s.mongo_uri, s.refresh, s.interval) == ("env", "mongodb://db.example:27018", 5.0, 2.0)


@pytest.mark.parametrize("env, message", [
    ({"MONGO_URI": "localhost:27017"}, "is not a MongoDB URI"),
    ({"DASHBOARD_REFRESH": "0.2"}, "too small"),
    ({"CRYPTO_INTERVAL": "often"}, "is not a number"),
])
def test_unusable_settings_are_named(env, message):
    with pytest.raises(ConfigError, match=message):
        load(env)


@pytest.mark.parametrize("uri, masked", [
    ("mongodb://localhost:27017", "mongodb://localhost:27017"),
    ("mongodb://bob:hunter2@db:27017/crypto", "mongodb://bob:***@db:27017/crypto"),
    ("mongodb+srv://bob:p%40ss@cluster0.example.net/?retryWrites=true",
     "mongodb+srv://bob:***@cluster0.example.net/?retryWrites=true"),
    ("mongodb://bob@h1:1,h2:2/?authMechanismProperties=AWS_SESSION_TOKEN:abc&tlsCertificateKeyFilePassword=x",
     "mongodb://bob@h1:1,h2:2/?authMechanismProperties=AWS_SESSION_TOKEN:abc&tlsCertificateKeyFilePassword=***"),
])
def test_passwords_never_show(uri, masked):
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
def test_server_address_names_host_and_port(uri, address):
    assert server_address(uri) == address


@pytest.mark.parametrize("value, text", [(87123.456, "$87,123.46"), (2900.5, "$2,900.50"), (1.00021, "$1.0002"),
                                         (0.0000123, "$1.23e-05"), (0.5, "$0.5"), (None, "—"), (math.nan, "—")])
def test_prices(value, text):
    assert formatting.price(value) == text


@pytest.mark.parametrize("value, text", [(3.126e10, "$31.26 B"), (9.5e8, "$950.00 M"), (1.3e12, "$1.30 T"),
                                         (12.5, "$12.50"), (None, "—")])
def test_large_sums(value, text):
    assert formatting.money(value) == text


@pytest.mark.parametrize("pct, text", [(3.64, ":green[**▲ +3.64 %**]"), (-2.1, ":red[**▼ −2.10 %**]"),
                                       (0.0, "**0.00 %**"), (None, "—"), (math.nan, "—")])
def test_changes_are_coloured_with_an_arrow(pct, text):
    assert formatting.change(pct) == text


def test_ages():
    now = dt.datetime(2025, 11, 21, 12, 0, tzinfo=dt.timezone.utc)
    ago = [formatting.age(now - dt.timedelta(seconds=s), now) for s in (0, 12, 119, 600, 3 * 3600, 5 * 86400)]
    assert ago == ["0 s ago", "12 s ago", "119 s ago", "10 min ago", "3 h ago", "5 d ago"]
    assert formatting.age(now + dt.timedelta(seconds=5), now) == "0 s ago"  # a source clock slightly ahead
