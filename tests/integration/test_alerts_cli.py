"""Requires MongoDB: `cryptoapp alerts add|list|pause|resume|delete` through the installed console script, as users run it."""

import json
import os
import subprocess
from concurrent.futures import ThreadPoolExecutor

import pytest

from testkit.processes import ROOT, free_port

pytestmark = pytest.mark.integration
SLACK = "https://hooks.slack.com/services/T0AAAAAAA/B0BBBBBBB/XXXXXXXXXXXXXXXXXXXXXXXX"


def cryptoapp(db, *args: str) -> subprocess.CompletedProcess:
    # WEB_PORT: a port no worker listens on, so a spread_bps rule finds no running sources. No cached coin list: the
    # coins resolve through the built-in one, whatever CoinGecko told this machine's worker.
    env = {**os.environ, "MONGO_DB": db.name, "WEB_PORT": str(free_port()),
           "CRYPTO_COINS_CACHE": str(ROOT / ".local" / "no-such-coin-list.json")}
    return subprocess.run([str(ROOT / ".venv" / "bin" / "cryptoapp"), *args], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=60)


def test_rules_are_added_listed_paused_resumed_and_deleted(db):
    added = cryptoapp(db, "alerts", "add", "btc", "above", "100000", "--webhook", SLACK, "--format", "slack")
    assert added.returncode == 0, added.stderr
    rule_id = added.stdout.split()[2].rstrip(":")
    assert added.stdout.startswith(f"added rule {rule_id}: BTC above 100,000 USD -> "
                                   "https://hooks.slack.com/services/***/***/*** (slack)")
    falling = cryptoapp(db, "alerts", "add", "ETH", "change_pct", "-3", "--window", "15m")  # a negative threshold
    assert falling.returncode == 0, falling.stderr
    stored = db.alert_rules.find_one({"_id": rule_id})
    assert (stored["coin"], stored["kind"], stored["threshold"], stored["enabled"]) == ("BTC", "above", 100000, True)
    assert stored["delivery"] == {"webhook": SLACK, "format": "slack"}
    assert db.alert_rules.find_one({"kind": "change_pct"})["threshold"] == -3

    listing = cryptoapp(db, "alerts", "list")
    assert "ETH down 3 % within 15m" in listing.stdout and "services/***/***/***" in listing.stdout
    assert "XXXXXXXX" not in listing.stdout + listing.stderr

    assert cryptoapp(db, "alerts", "pause", rule_id).returncode == 0
    assert db.alert_rules.find_one({"_id": rule_id})["enabled"] is False
    rows = json.loads(cryptoapp(db, "--json", "alerts", "list").stdout)
    assert {r["id"]: r["enabled"] for r in rows}[rule_id] is False
    assert cryptoapp(db, "alerts", "resume", rule_id).returncode == 0
    assert db.alert_rules.find_one({"_id": rule_id})["enabled"] is True
    assert cryptoapp(db, "alerts", "delete", rule_id).returncode == 0
    assert db.alert_rules.count_documents({"_id": rule_id}) == 0


def test_invalid_input_exits_1_with_one_line_naming_the_field(db):
    cases = {
        ("add", "BTC", "above", "lots"): "cryptoapp alerts: threshold: 'lots' is not a number",
        ("add", "ETH", "change_pct", "3"): "cryptoapp alerts: window: change_pct needs a window, e.g. --window 15m",
        ("add", "BTC", "above", "1", "--format", "teams"): "cryptoapp alerts: format: 'teams' is not one of",
        ("add", "BTC", "above", "1", "--webhook", "ftp://hooks.slack.com/services/T0/B0/XXXXXXXXXXXXXXXX"):
            "cryptoapp alerts: webhook: 'ftp://hooks.slack.com/services/***/***/***' is not an http(s) URL",
        ("add", "BTC", "spread_bps", "5"): "cryptoapp alerts: coin: cannot tell whether BTC has bid/ask: no worker",
        ("pause", "0badc0de"): "cryptoapp alerts: id: no rule 0badc0de",
    }
    with ThreadPoolExecutor(3) as pool:  # each run is a process start: run them side by side
        results = dict(zip(cases, pool.map(lambda args: cryptoapp(db, "alerts", *args), cases), strict=True))
    for args, expected in cases.items():
        result = results[args]
        assert result.returncode == 1, (args, result.stdout, result.stderr)
        assert result.stderr.startswith(expected), (args, result.stderr)
        assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr, result.stderr
    assert db.alert_rules.count_documents({}) == 0


def test_a_coin_is_spelled_as_crypto_symbols_spells_it_and_an_untracked_one_needs_untracked(db):
    by_id, nope, doge = (("add", "bitcoin", "above", "100"), ("add", "NOPECOIN", "above", "100"),
                         ("add", "dogecoin", "above", "1", "--untracked"))
    with ThreadPoolExecutor(3) as pool:
        added, refused, waiting = pool.map(lambda args: cryptoapp(db, "alerts", *args), (by_id, nope, doge))
    assert added.returncode == 0, added.stderr
    assert added.stdout.startswith("added rule ") and ": BTC above 100 USD (stored only" in added.stdout
    assert (refused.returncode, refused.stdout) == (2, "")
    assert refused.stderr == ("cryptoapp alerts: coin: 'NOPECOIN' is no coin id or ticker the catalogue knows "
                              "(nearest known ids: dogecoin, toncoin, binancecoin); the worker tracks BTC, ETH, BNB, "
                              "USDT, USDC\n")
    assert waiting.returncode == 0 and "[waiting: the worker does not track DOGE]" in waiting.stdout, waiting.stderr
    assert sorted(d["coin"] for d in db.alert_rules.find()) == ["BTC", "DOGE"]
    rows = {r["coin"]: r["state"] for r in json.loads(cryptoapp(db, "--json", "alerts", "list").stdout)}
    assert rows == {"BTC": "enabled", "DOGE": "waiting"}
