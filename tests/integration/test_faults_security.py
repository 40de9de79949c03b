"""Requires Java and FerretDB/mongod (private Kafka and MongoDB): credentials come from the environment only and never reach a log; input is validated; no secret is tracked."""

from __future__ import annotations

import re
import signal
import subprocess
import time
import urllib.parse
from pathlib import Path

import pytest
from pymongo import MongoClient

from cryptoapp.settings import mask_uri
from testkit.processes import wait_for
from tests.support.fake_coingecko import FakeCoinGecko, FakeCoinGeckoServer

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "Tr0ub4dor-and-3"
API_KEY = "CG-demo-key-that-stays-secret"


def test_passwords_and_keys_never_reach_the_worker_log(private_services):
    """Two workers log at info level: one whose writes succeed (PLAIN), one whose login MongoDB refuses (SCRAM)."""
    host = private_services.mongo_uri.split("//", 1)[1]
    name = f"faults-secrets-{time.strftime('%H%M%S')}"
    with FakeCoinGeckoServer(FakeCoinGecko()) as fake:
        working = private_services.worker(
            name, MONGO_URI=f"mongodb://cryptoapp:{PASSWORD}@{host}/?authMechanism=PLAIN",
            COINGECKO_API_URL=fake.url, COINGECKO_API_KEY=API_KEY, CRYPTO_INTERVAL="1")
        refused = private_services.worker(
            f"{name}-refused", MONGO_URI=f"mongodb://cryptoapp:{PASSWORD}@{host}/?authSource=admin",
            CRYPTO_SOURCE="simulated", CRYPTO_INTERVAL="1")
        client = MongoClient(private_services.mongo_uri)
        try:
            working.start(wait_web=False)
            refused.start(wait_web=False)
            wait_for(lambda: client[name].prices.count_documents({}) >= 5, 60, "ticks stored with a password")
            wait_for(lambda: "retry 2 in" in refused.log_text(), 60, "the refused login retried twice")
            assert fake.calls_to("/simple/price")[0].headers["x-cg-demo-api-key"] == API_KEY
        finally:
            working.stop()
            refused.stop(signal.SIGKILL)  # its stop would wait for MongoDB (test_faults_mongo covers that)
            client.close()
    for worker in (working, refused):
        log = worker.log_text()
        assert PASSWORD not in log and urllib.parse.quote(PASSWORD) not in log
        assert API_KEY not in log
        assert f"MongoDB: mongodb://cryptoapp:***@{host}/" in log
    assert re.search(r"MongoDB at mongodb://cryptoapp:\*\*\*@.* failed: OperationFailure: Unsupported authentication",
                     refused.log_text())


def test_mask_uri_hides_passwords_and_credential_options():
    assert mask_uri(f"mongodb://app:{PASSWORD}@db1:27017,db2:27017/crypto?replicaSet=rs0") == \
        "mongodb://app:***@db1:27017,db2:27017/crypto?replicaSet=rs0"
    assert mask_uri("mongodb://h/?tls=true&tlsCertificateKeyFilePassword=pw&authMechanismProperties="
                    "AWS_SESSION_TOKEN:tok") == \
        "mongodb://h/?tls=true&tlsCertificateKeyFilePassword=***&authMechanismProperties=***"
    assert mask_uri("mongodb+srv://u:p%40ss@cluster0.example.net/") == "mongodb+srv://u:***@cluster0.example.net/"


@pytest.fixture(scope="module")
def view_worker(private_services):
    worker = private_services.worker(f"faults-view-{time.strftime('%H%M%S')}", CRYPTO_SOURCE="simulated",
                                     CRYPTO_INTERVAL="1")
    worker.start()
    wait_for(lambda: worker.price("BTC"), 60, "/prices/BTC/ served")
    yield worker
    worker.stop()


@pytest.mark.parametrize("path", ["A" * 16, "a" * 2000, "btc", "BT-C", "%E2%82%BF", "BTC%00", "..%2F..%2Fetc%2Fpasswd",
                                  "BTC%20OR%201%3D1", "%3Cscript%3E"])
def test_a_malformed_ticker_is_refused_with_a_clear_404(view_worker, path):
    status, body = view_worker.get(f"/prices/{path}/")
    assert status == 404 and "malformed ticker" in body["error"], (status, body)
    assert view_worker.price("BTC") is not None  # and the worker serves on


def test_env_example_documents_every_setting_and_no_secret_is_tracked():
    example = (ROOT / ".env.example").read_text()
    documented = dict(re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=(.*)$", example, re.MULTILINE))
    read_by_code = set()
    for source in [*ROOT.glob("cryptoapp/**/*.py"), *ROOT.glob("dashboard/**/*.py")]:
        text = source.read_text()
        read_by_code |= set(re.findall(r"""(?:environ|env)(?:\.get)?[(\[]\s*["']([A-Z][A-Z0-9_]+)["']""", text))
        read_by_code |= set(re.findall(r"""["']([A-Z][A-Z0-9_]+)["']\s+in\s+env""", text))
        read_by_code |= set(re.findall(r"""get\(\s*["']((?:MONGO|CRYPTO|DASHBOARD|KAFKA)_[A-Z0-9_]+)["']""", text))
    for source in ROOT.glob("cryptoapp/settings/*.py"):  # every pydantic setting, by its environment name
        read_by_code |= set(re.findall(r'alias="([A-Z][A-Z0-9_]+)"', source.read_text()))
    script = (ROOT / "scripts" / "services.sh").read_text()
    read_by_code |= set(re.findall(r"\$\{([A-Z][A-Z0-9_]+):-", script)) - {"XDG_DATA_HOME"}
    assert read_by_code - set(documented) == set(), "add them to .env.example"
    for name, value in documented.items():  # examples only: no real credential
        if re.search(r"KEY|PASSWORD|SECRET|TOKEN", name):
            assert value.strip() == "", f"{name} in .env.example must stay empty"
        assert mask_uri(value.strip()) == value.strip(), f"{name} in .env.example holds a password"
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    assert not [f for f in tracked if re.search(r"(^|/)\.env$|secrets\.toml$|\.pem$|id_rsa", f)]
    ignored = (ROOT / ".gitignore").read_text().split()
    assert ".env" in ignored and ".streamlit/secrets.toml" in ignored
