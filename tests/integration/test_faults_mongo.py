"""Requires Java and FerretDB/mongod (private Kafka and MongoDB): while MongoDB is down the sink holds its offsets, then writes everything once."""

from __future__ import annotations

import datetime as dt
import re
import signal
import time

import pytest

from testkit.processes import wait_for
from testkit.services import assert_nothing_lost_or_doubled

pytestmark = pytest.mark.integration
RETRY = r"WARNING.*MongoDB at mongodb://127\.0\.0\.1:\d+ \(database '{name}'\) failed: \w+: .*; retry \d+ in [\d.]+ s " \
        r"\(the batch of \d+ ticks is held, its offsets uncommitted\)"


def test_mongo_down_at_start_then_every_tick_is_written_once(private_services):
    private_services.down("mongo")
    with private_services.simulated_worker("mongo-start", 0.1) as (name, worker):
        worker.start()
        wait_for(lambda: len(re.findall(RETRY.format(name=name), worker.log_text())) >= 2, 60,
                 "the sink retrying with backoff")
        back = dt.datetime.now(dt.timezone.utc)
        private_services.up("mongo")
        private_services.store_all_and_stop(name, worker)
    assert_nothing_lost_or_doubled(private_services.audit(name))
    assert private_services.documents(name, {"timestamp": {"$lt": back}}) >= 20  # published while down


def test_mongo_down_mid_stream_and_a_sigterm_meanwhile_commit_nothing_unwritten(private_services):
    """SIGTERM while MongoDB is down: the worker exits 70 without committing; a restart writes the rest."""
    with private_services.simulated_worker("mongo-mid", 0.05, stored=200) as (name, worker):
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
        private_services.store_all_and_stop(name, worker)
    assert_nothing_lost_or_doubled(private_services.audit(name))
