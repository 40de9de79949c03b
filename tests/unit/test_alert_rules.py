"""Alert rules: what is accepted, the one-line refusals naming the field, the stored document, masked webhooks."""

import datetime as dt

import pytest

from cryptoapp.alerts.rules import AlertRule, RuleError, format_window, new_rule
from cryptoapp.uris import mask_webhook_url

SLACK = "https://hooks.slack.com/services/T0AAAAAAA/B0BBBBBBB/XXXXXXXXXXXXXXXXXXXXXXXX"
DISCORD = "https://discord.com/api/webhooks/1234567890123456789/AbCdEfGhIjKlMnOpQrStUvWxYz0123456789"


def test_each_kind_is_accepted_with_its_parameters():
    assert new_rule("btc", "above", "100000").describe() == "BTC above 100,000 USD"
    assert new_rule("ETH", "below", 2500.5).describe() == "ETH below 2,500.5 USD"
    assert new_rule("ETH", "change_pct", "3", window="15m").describe() == "ETH up 3 % within 15m"
    falling = new_rule("ETH", "change_pct", "-3", window="1h")
    assert (falling.threshold, falling.window_s, falling.describe()) == (-3, 3600, "ETH down 3 % within 1h")
    assert new_rule("BTC", "volume_spike", 50, window="30m").describe() == "BTC 24h volume up 50 % within 30m"
    assert new_rule("BTC", "spread_bps", 5, coins_with_bid_ask={"BTC"}).describe() == "BTC spread above 5 bps"


@pytest.mark.parametrize("args, kwargs, message", [
    (("BTC$", "above", 1), {}, "coin: 'BTC$' is not a ticker: use 1-15 letters or digits, e.g. BTC"),
    (("BTC", "abov", 1), {}, "kind: 'abov' is not one of 'above', 'below', 'change_pct', 'volume_spike' or 'spread_bps'"),
    (("BTC", "above", "abc"), {}, "threshold: 'abc' is not a number: give a number, e.g. 100000 for a price or 3 for 3 %"),
    (("BTC", "above", "nan"), {}, "threshold: nan is not a finite number"),
    (("BTC", "above", -5), {}, "threshold: a price must be positive, e.g. above 100000"),
    (("BTC", "above", 1), {"window": "15m"}, "window: only change_pct and volume_spike take a window; above does not"),
    (("ETH", "change_pct", 3), {}, "window: change_pct needs a window, e.g. --window 15m"),
    (("ETH", "change_pct", 3), {"window": "15x"}, "window: '15x' is not a duration: use e.g. 15m, 1h or 90s"),
    (("ETH", "change_pct", 3), {"window": "2d"}, "window: '2d' is outside 1m to 24h"),
    (("ETH", "change_pct", 0), {"window": "1h"}, "threshold: change_pct needs a signed percentage, e.g. 3"),
    (("ETH", "change_pct", -100), {"window": "1h"}, "threshold: a price cannot fall 100 %: use a fall under 100 %, e.g. -3"),
    (("ETH", "volume_spike", -5), {"window": "1h"}, "threshold: volume_spike needs a positive number"),
    (("BTC", "above", 1), {"format": "teams"}, "format: 'teams' is not one of 'json', 'slack' or 'discord'"),
    (("BTC", "above", 1), {"webhook": "ftp://host/x"}, "webhook: 'ftp://host/x' is not an http(s) URL"),
    (("BTC", "above", 1), {"webhook": "https://"}, "webhook: 'https://' is not an http(s) URL"),
    (("BTC", "spread_bps", 5), {"coins_with_bid_ask": {"ETH"}},
     "coin: BTC has no bid/ask from the running sources (coins with bid/ask: ETH); spread_bps needs a source"),
])
def test_bad_input_is_refused_with_one_line_naming_the_field_and_the_fix(args, kwargs, message):
    with pytest.raises(RuleError) as refused:
        new_rule(*args, **kwargs)
    assert str(refused.value).startswith(message)
    assert "\n" not in str(refused.value)


def test_a_refused_webhook_never_shows_its_token():
    with pytest.raises(RuleError) as refused:
        new_rule("BTC", "above", 1, webhook="ftp://hooks.slack.com/services/T0AAAAAAA/B0BBBBBBB/XXXXXXXXXXXXXXXXXXXXXXXX")
    assert "XXXXXXXX" not in str(refused.value) and "T0AAAAAAA" not in str(refused.value)


def test_document_round_trip_keeps_the_id_and_the_webhook():
    rule = new_rule("BTC", "change_pct", -2.5, window="90s", webhook=SLACK, format="Slack")
    doc = rule.to_document()
    assert doc["_id"] == rule.id and len(rule.id) == 8
    assert doc["delivery"] == {"webhook": SLACK, "format": "slack"}
    assert doc["created_at"] == doc["updated_at"] and doc["created_at"].tzinfo is not None
    assert AlertRule.from_document(doc) == rule


def test_a_malformed_stored_rule_is_named_by_its_id():
    with pytest.raises(RuleError, match=r"stored rule 'deadbeef': threshold: a price must be positive"):
        AlertRule.from_document({"_id": "deadbeef", "coin": "BTC", "kind": "above", "threshold": 0,
                                 "created_at": dt.datetime(2025, 1, 1, tzinfo=dt.timezone.utc)})


def test_ids_are_new_for_each_rule_and_stable_afterwards():
    first, second = new_rule("BTC", "above", 1), new_rule("BTC", "above", 1)
    assert first.id != second.id
    assert AlertRule.from_document(first.to_document()).id == first.id


@pytest.mark.parametrize("url, shown", [
    (SLACK, "https://hooks.slack.com/services/***/***/***"),
    (DISCORD, "https://discord.com/api/webhooks/***/***"),
    ("https://user:pass@example.com:8443/hook/alerts?key=abc&channel=x#frag",
     "https://***@example.com:8443/hook/alerts?key=***&channel=***"),
    ("http://127.0.0.1:9000/hook", "http://127.0.0.1:9000/hook"),
    ("https://example.com/a1b2c3d4e5", "https://example.com/***"),
    ("", ""), (None, ""), ("http://[::1", "<unparseable URL>"),
])
def test_webhook_urls_are_masked_wherever_they_are_shown(url, shown):
    assert mask_webhook_url(url) == shown


def test_a_rule_shown_or_printed_has_its_webhook_masked():
    rule = new_rule("BTC", "above", 1, webhook=SLACK)
    assert rule.shown()["webhook"] == "https://hooks.slack.com/services/***/***/***"
    assert "XXXXXXXX" not in repr(rule) and "XXXXXXXX" not in str(rule)


def test_windows_are_written_back_in_their_shortest_form():
    assert [format_window(s) for s in (60, 90, 900, 3600, 86400, None)] == ["1m", "90s", "15m", "1h", "1d", ""]


def tracked(*symbols):
    from cryptoapp.alerts.rule_input import Tracked
    from cryptoapp.coins import resolve_all, spellings

    return Tracked.of(resolve_all(symbols), spellings())


def test_an_alert_takes_the_coin_as_crypto_symbols_spells_it():
    from cryptoapp.alerts.rule_input import rule_from_input

    coins = tracked("bitcoin", "ethereum")
    assert rule_from_input("bitcoin", "above", 100, tracked=coins).coin == "BTC"
    assert rule_from_input("btc", "above", 100, tracked=coins).coin == "BTC"
    assert rule_from_input("Ethereum", "below", 1, tracked=coins).coin == "ETH"


def test_an_alert_for_a_coin_the_worker_does_not_track_is_refused_with_the_tracked_ones_unless_asked():
    from cryptoapp.alerts.rule_input import CoinError, rule_from_input

    coins = tracked("bitcoin", "ethereum")
    with pytest.raises(CoinError, match=r"^coin: DOGE \(dogecoin\) is not among the coins the worker tracks "
                                        r"\(BTC, ETH\): add it to CRYPTO_SYMBOLS .* add --untracked"):
        rule_from_input("DOGE", "above", 100, tracked=coins)
    with pytest.raises(CoinError, match=r"^coin: 'NOPECOIN' is no coin id or ticker the catalogue knows \(nearest "
                                        r"known ids: dogecoin.*\); the worker tracks BTC, ETH$"):
        rule_from_input("NOPECOIN", "above", 100, tracked=coins)
    rule = rule_from_input("dogecoin", "above", 100, tracked=coins, untracked=True)
    assert rule.coin == "DOGE" and coins.waits(rule.coin) and not coins.waits("BTC")
    assert rule_from_input("nopecoin", "above", 100, tracked=coins, untracked=True).coin == "NOPECOIN"


def test_errors_speak_the_words_of_the_place_the_rule_was_typed():
    from cryptoapp.alerts.rule_input import CoinError, rule_from_input
    from cryptoapp.alerts.rules import Wording

    form = Wording({"coin": "Coin", "threshold": "Threshold", "window": "Window"}, "15m", "tick the box")
    coins = tracked("bitcoin")
    cases = [(("BTC", "change_pct", 3), "Window: change_pct needs a window, e.g. 15m"),
             (("BTC", "above", "lots"), "Threshold: 'lots' is not a number"),
             (("BTC", "above", -1), "Threshold: a price must be positive"),
             (("ETH", "above", 1), "Coin: ETH (ethereum) is not among the coins the worker tracks (BTC)")]
    for args, message in cases:
        with pytest.raises(RuleError) as refused:
            rule_from_input(*args, tracked=coins, words=form)
        assert str(refused.value).startswith(message), refused.value
        assert "--" not in str(refused.value) and isinstance(refused.value, CoinError) == (args[0] == "ETH")


def test_the_dashboard_form_names_its_own_labels_and_checkbox():
    from cryptoapp.alerts.rule_input import CoinError, rule_from_input
    from dashboard.alerts import FORM

    with pytest.raises(CoinError, match=r"^Coin: DOGE \(dogecoin\) is not among the coins the worker tracks \(BTC\):"
                                        r".* tick “Keep it for a coin with no prices yet” to store the rule anyway"):
        rule_from_input("dogecoin", "above", 100, tracked=tracked("bitcoin"), words=FORM)
