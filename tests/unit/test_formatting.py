"""How the dashboard writes numbers, sums, changes and ages."""

import datetime as dt
import math

import pytest

from dashboard import formatting


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


@pytest.mark.parametrize("value, currency, text", [(87123.456, "usdt", "87,123.46 USDT"), (1.00021, "usdc", "1.0002 USDC"),
                                                   (87123.456, None, "$87,123.46"), (None, "usdt", "—")])
def test_prices_in_a_quote_currency_name_it(value, currency, text):
    assert formatting.price(value, currency) == text


@pytest.mark.parametrize("value, currency, text", [(1.5e9, "usdt", "1.50 B USDT"), (-2e6, "usd", "-$2.00 M")])
def test_sums_in_a_quote_currency_name_it(value, currency, text):
    assert formatting.money(value, currency) == text


@pytest.mark.parametrize("spread, bps, currency, text", [(5.71, 0.6516, "usd", "$5.71 (0.65 bps)"),
                                                          (0.01, 1.0, "usdt", "0.01 USDT (1.00 bps)"),
                                                          (5.0, None, "usd", "$5"), (None, None, "usd", "—")])
def test_spreads_absolute_and_in_basis_points(spread, bps, currency, text):
    assert formatting.spread(spread, bps, currency) == text


@pytest.mark.parametrize("value, text", [(200000.0, "200,000"), (1985.5, "1,985.5"), (-3.0, "-3"), (None, "—")])
def test_numbers_have_thousands_separators_as_the_rules_write_them(value, text):
    assert formatting.number(value) == text


@pytest.mark.parametrize("value, signed, text", [(0.25, False, "25.00 %"), (0.1, True, "+10.00 %"),
                                                 (-0.025, True, "-2.50 %"), (math.nan, True, "—")])
def test_ratios_are_shown_as_percentages(value, signed, text):
    assert formatting.percent(value, signed) == text


def test_utc_times_carry_no_offset_and_missing_ones_are_a_dash():
    import pandas as pd

    assert formatting.utc_time(pd.Timestamp("2025-11-21T10:00:05Z")) == "2025-11-21 10:00:05"
    east = dt.datetime(2025, 11, 21, 11, 0, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    assert formatting.utc_time(east, seconds=False) == "2025-11-21 10:00"
    assert formatting.utc_time(None) == formatting.utc_time(pd.NaT) == "—"
    assert formatting.text(None) == "" and formatting.text("HTTP 500") == "HTTP 500"
