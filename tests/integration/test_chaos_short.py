"""Requires Java and FerretDB/mongod: the short fault drill (`make chaos CHAOS_ARGS=--short`) loses and doubles nothing."""

from __future__ import annotations

import json

import pytest

from testkit.processes import run_module

pytestmark = [pytest.mark.integration, pytest.mark.drill]


def test_short_chaos_drill_loses_nothing_and_doubles_nothing(tmp_path):
    figures = tmp_path / "chaos.json"
    run = run_module("bench.chaos", "--short", "--json", str(figures))
    report = json.loads(figures.read_text())
    assert [f["fault"] for f in report["faults"]] == ["kafka", "mongo", "worker"]
    assert report["acknowledged_ticks"] >= 1000
    assert (report["missing"], report["invented"], report["duplicates"], report["unparked"]) == (0, 0, 0, 0)
    assert report["documents"] == report["acknowledged_ticks"] == report["distinct_observations"]
    assert report["poison_in_topic"] == 3 and report["dlq_distinct"] == 3 and report["dlq_intact"]
    assert report["table_stale"] == [] and report["table_tickers"] == 5
    assert "verdict" in run.stdout and "OK: nothing lost, nothing doubled" in run.stdout
