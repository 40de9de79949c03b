"""Requires Java and FerretDB/mongod (private Kafka and MongoDB): while MongoDB is down the sink holds its offsets, then writes everything once."""

from __future__ import annotations

import datetime as dt
import re
import signal
import time

import pytest
from pymongo import MongoClient

from tests.support.private_services import assert_nothing_lost_or_doubled
from tests.support.worker import wait_for

pytestmark = pytest.mark.integration
RETRY = r"WARNING.*MongoDB at mongodb://127\.0\.0\.1:\d+ \(database '{name}'\) failed: \w+: .*; retry \d+ in [\d.]+ s " \
        r"\(the batch of \d+ ticks is held, its offsets uncommitted\)"


@pytest.fixture
def documents(private_services):
    client = MongoClient(private_services.mongo_uri)
    yield lambda name: client[name].prices.count_documents({})
    client.close()


def complete(private_services, name: str):
    """The audit, once every tick in the topic is in MongoDB."""
    return wait_for(lambda: (lambda r: r if not r.missing else None)(private_services.audit(name)), 90,
                    f"every acknowledged tick of {name} stored", interval=1.0)


def test_mongo_down_at_start_then_every_tick_is_written_once(private_services, documents):
    name = f"faults-mongo-start-{time.strftime('%H%M%S')}"
    private_services.down("mongo")
    worker = private_services.worker(name, CRYPTO_SOURCE="simulated", CRYPTO_INTERVAL="0.1")
    try:
        worker.start()
        wait_for(lambda: len(re.findall(RETRY.format(name=name), worker.log_text())) >= 2, 60,
                 "the sink retrying with backoff")
        back = dt.datetime.now(dt.timezone.utc)
        private_services.up("mongo")
        complete(private_services, name)
        assert worker.stop() == 0
    finally:
        worker.stop()
        private_services.up("mongo")
    result = private_services.audit(name)
    assert_nothing_lost_or_doubled(result)
    client = MongoClient(private_services.mongo_uri, tz_aware=True)
    try:
        assert client[name].prices.count_documents({"timestamp": {"$lt": back}}) >= 20  # published while down
    finally:
        client.close()


def test_mongo_down_mid_stream_and_a_sigterm_meanwhile_commit_nothing_unwritten(private_services, documents):
    """SIGTERM while MongoDB is down: the worker exits 70 without committing; a restart writes the rest."""
    name = f"faults-mongo-mid-{time.strftime('%H%M%S')}"
    worker = private_services.worker(name, CRYPTO_SOURCE="simulated", CRYPTO_INTERVAL="0.05")
    try:
        worker.start()
        wait_for(lambda: documents(name) >= 200, 60, "a steady stream stored")
        private_services.down("mongo")
        wait_for(lambda: re.search(RETRY.format(name=name), worker.log_text()), 60, "the sink retrying")
        started = time.monotonic()
        assert worker.stop(signal.SIGTERM) == 70
        assert time.monotonic() - started < 30  # bounded: a stopping worker does not retry forever
        assert re.search(r"CRITICAL.*the worker did not stop within 15 s \(a batch MongoDB has not accepted",
                         worker.log_text())
        private_services.up("mongo")
        at_exit = private_services.audit(name)
        assert at_exit.missing and at_exit.committed_unstored == set()  # unwritten, and not committed either
        worker.start()
        complete(private_services, name)
        assert worker.stop() == 0
    finally:
        worker.stop()
        private_services.up("mongo")
    result = private_services.audit(name)
    assert_nothing_lost_or_doubled(result)
