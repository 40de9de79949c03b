"""Shared fixtures: the real Kafka broker and MongoDB server, started through scripts/services.sh."""

import os
import subprocess
import uuid
from pathlib import Path

import pytest

from testkit.services import PrivateServices
from testkit.webhook import FakeWebhookServer
from tests.support.databases import dropped_after

ROOT = Path(__file__).resolve().parent.parent
SERVICES = ROOT / "scripts" / "services.sh"
# Tests that import the Faust app in this process (agent tests) get this session's own app id and topics, never a
# user's `crypto-prices`; workers started by tests choose their own names anyway.
os.environ["CRYPTO_APP_ID"] = f"test-session-{uuid.uuid4().hex[:8]}"
os.environ["CRYPTO_TOPIC"] = f"{os.environ['CRYPTO_APP_ID']}-prices"


@pytest.fixture(scope="session")
def services():
    """Requires the real servers: starts them the way `make services` does (a no-op when running).

    A server that cannot start fails the test run; integration tests never skip.
    """
    subprocess.run([str(SERVICES), "up", "kafka", "mongo"], check=True, timeout=600)
    return {
        "kafka": os.environ.get("KAFKA_BROKER", "kafka://localhost:9092").split("://", 1)[-1],
        "mongo_uri": os.environ.get("MONGO_URI", "mongodb://localhost:27017"),
    }


@pytest.fixture
def unique_name():
    """A name no other test run uses, for topics, databases and consumer groups."""
    return f"test-{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="session")
def private_services(tmp_path_factory):
    """Requires Java and FerretDB/mongod: a Kafka and a MongoDB of this test session's own, always torn down.

    Tests may stop or kill them but must leave them up (`up()` is a no-op when running).
    """
    services = PrivateServices(tmp_path_factory.mktemp("private-services"))
    try:
        services.up()
        yield services
    finally:
        services.close()


@pytest.fixture
def db(services, unique_name):
    """A database of this test's own on the real server, dropped afterwards."""
    with dropped_after(services["mongo_uri"], unique_name) as database:
        yield database


@pytest.fixture
def receiver():
    """A local webhook receiver (testkit/webhook.py) for this test alone."""
    with FakeWebhookServer() as fake:
        yield fake


@pytest.fixture
def page_db(db, services, unique_name, monkeypatch):
    """`db`, named in MONGO_URI / MONGO_DB for the page under test."""
    monkeypatch.setenv("MONGO_URI", services["mongo_uri"])
    monkeypatch.setenv("MONGO_DB", unique_name)
    return db


@pytest.fixture(scope="module")
def module_db(services, request):
    """A database shared by one test module's tests (e.g. with one worker for the module), dropped afterwards."""
    name = f"{request.module.__name__.rsplit('.', 1)[-1].removeprefix('test_')}-{uuid.uuid4().hex[:8]}"
    with dropped_after(services["mongo_uri"], name) as database:
        yield database
