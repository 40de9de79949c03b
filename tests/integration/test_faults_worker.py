"""Requires Java and FerretDB/mongod (private Kafka and MongoDB): a worker killed with -9 comes back with its table and loses nothing; SIGTERM flushes."""

from __future__ import annotations

import signal

import pytest

from cryptoapp.schema import iso_z
from testkit.processes import wait_for
from testkit.services import assert_nothing_lost_or_doubled

pytestmark = pytest.mark.integration


def test_kill_9_then_restart_restores_latest_prices_and_mongodb_is_complete(private_services):
    with private_services.simulated_worker("kill-worker", 0.05, stored=300) as (name, worker):
        assert worker.stop(signal.SIGKILL) == -signal.SIGKILL
        before = private_services.audit(name)
        assert before.committed_unstored == set()  # no offset got ahead of its write
        # Only bitcoin is polled after the restart: the other coins' entries can only come from the changelog.
        worker.env["CRYPTO_SYMBOLS"] = "bitcoin"
        worker.start()
        expected = {t: iso_z(ts) for t, ts in before.newest.items() if t != "BTC"}
        wait_for(lambda: {t: v["timestamp"] for t, v in (worker.get("/prices/")[1] or {}).items() if t != "BTC"}
                 == expected, 60, "latest_prices restored from its changelog")
        private_services.store_all_and_stop(name, worker)
    result = private_services.audit(name)
    assert len(result.tick_ids) > len(before.tick_ids)
    assert_nothing_lost_or_doubled(result)


def test_sigterm_writes_the_pending_batch_and_exits_0(private_services):
    """Exit 0 means the sink's batch was written (else it exits 70); everything committed is stored, and
    what the worker had fetched but not stored stays uncommitted for the next start, which stores it."""
    with private_services.simulated_worker("sigterm", 0.02, stored=200) as (name, worker):
        assert worker.stop(signal.SIGTERM) == 0
        assert_nothing_lost_or_doubled(private_services.audit(name))  # no restart yet: stored before the exit
        assert "exiting with a batch of" not in worker.log_text()
        worker.env["CRYPTO_INTERVAL"] = "86400"  # one poll: the restart only reads the rest
        worker.start()
        private_services.store_all_and_stop(name, worker)
    assert_nothing_lost_or_doubled(private_services.audit(name))
