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
