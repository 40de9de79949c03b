"""Requires Java and FerretDB/mongod (private Kafka and MongoDB): the worker waits for a late broker and outlives a hard-killed one, losing no acknowledged tick."""

from __future__ import annotations

import re

import pytest

from testkit.processes import wait_for
from testkit.services import assert_nothing_lost_or_doubled

pytestmark = pytest.mark.integration


@pytest.mark.drill  # about 50 s: `make drills` (and CI after `make test`)
def test_worker_waits_for_a_late_kafka_then_outlives_a_hard_kill_without_losing_a_tick(private_services):
    private_services.down("kafka")
    with private_services.simulated_worker("kafka", 0.05) as (name, worker):
        # 1. Started before the broker: one clear line, then it waits.
        worker.start(wait_web=False)
        waiting = rf"WARNING.*Kafka at {re.escape(private_services.kafka)} is not reachable: waiting for it"
        wait_for(lambda: re.search(waiting, worker.log_text()), 30, "the worker saying it waits for Kafka")
        assert worker.proc.poll() is None
        private_services.up("kafka")
        wait_for(lambda: private_services.documents(name) >= 300, 90, "ticks stored once Kafka is up")
        log = worker.log_text()
        assert len(re.findall(waiting, log)) == 1 and "Traceback" not in log
        assert re.search(rf"Kafka at {re.escape(private_services.kafka)} answers after \d+ s: starting", log)
        # 2. The broker hard-killed mid-stream and restarted.
        since = len(log)
        private_services.kill("kafka")
        wait_for(lambda: "Connect call failed" in worker.log_text()[since:], 30, "the worker losing the broker")
        stored_while_down = private_services.documents(name)
        private_services.up("kafka")
        wait_for(lambda: private_services.documents(name) >= stored_while_down + 300, 120,
                 "the stream stored again after the restart")
        private_services.all_stored(name, 60, worker=worker)
        assert worker.proc.poll() is None
        assert worker.stop() == 0
    result = private_services.audit(name)
    assert len(result.tick_ids) >= stored_while_down + 300
    assert_nothing_lost_or_doubled(result)
