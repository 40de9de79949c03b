"""Shared fixtures: the real Kafka broker and MongoDB server, started through scripts/services.sh."""

import os
import subprocess
import uuid
from pathlib import Path

import pytest

from tests.support.private_services import private_services  # noqa: F401  (one private Kafka + MongoDB per run)

ROOT = Path(__file__).resolve().parent.parent
SERVICES = ROOT / "scripts" / "services.sh"


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
