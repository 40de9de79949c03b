"""Requires Kafka and MongoDB: `python -m bench --quick` runs every benchmark end to end, so the bench code never rots."""

import json

import pytest

from bench.__main__ import FULL_OUT, SECTIONS
from testkit.processes import run_module

pytestmark = [pytest.mark.integration, pytest.mark.drill]


def test_quick_bench_runs_every_section_and_leaves_the_full_results_alone(services, tmp_path):
    before = FULL_OUT.read_bytes() if FULL_OUT.exists() else None
    out = tmp_path / "results.json"
    run = run_module("bench", "--quick", "--out", str(out), timeout=900)  # ~9 min on two shared cores

    results = json.loads(out.read_text())
    assert results["mode"] == "quick"
    for section in SECTIONS:
        assert results[section]["status"] == "ok", (section, results[section])
    sink = results["sink"]
    assert sink["ticks_per_s"] > 0 and sink["naive_ticks_per_s"] > 0 and sink["raw_insert_many_ticks_per_s"] > 0
    for contender in ("project_sink", "project_sink_candles_off", "naive_insert_one", "raw_insert_many",
                      "store_without_kafka"):
        assert sink[contender]["stored"] > 0 and sink[contender]["ticks_per_s"] > 0
    assert len(results["latency"]["rate"]) == len(results["latency"]["p99_ms"]) == 2
    assert all(run["ticks_in_window"] > 0 and run["stored_by_deadline"] > 0 for run in results["latency"]["runs"])
    assert results["scale"]["workers"] == [1, 2] and all(r > 0 for r in results["scale"]["ticks_per_s"])
    assert results["alerts"]["rules"] > 0 and results["alerts"]["p99_ms"] is not None
    assert results["forecasts"]["sink_ratio"] > 0
    assert results["analytics"]["ticks"] > 0 and results["analytics"]["jobs_s"] > 0
    reads = results["reads"]
    for read in ("live_p95_ms", "history_24h_p95_ms", "history_168h_p95_ms", "coin_list_p95_ms"):
        assert len(reads[read]) == len(reads["archive_ticks"]) and all(v > 0 for v in reads[read])
    size = reads["sizes"][str(reads["archive_ticks"][0])]
    assert size["live"]["points"] > 0 and size["coin_list"]["points"] == 5 and size["history_24h"]["points"] > 0
    assert results["storage"]["bytes_per_tick"] > 0
    assert results["memory"]["worker_rss_mb_after_sink"] > 0
    page = results["page"]
    assert 0 < page["first_paint_ms"] <= page["full_ms"] and results["idle"]["mongo_cpu_pct"] >= 0
    assert 0 < results["cli"]["help_ms"] <= results["cli"]["help_max_ms"]
    assert {t["target"] for t in results["targets"]} and "Targets" in run.stdout
    assert (FULL_OUT.read_bytes() if FULL_OUT.exists() else None) == before
