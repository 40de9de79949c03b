"""Requires Kafka and MongoDB: `python -m bench --quick` runs every benchmark end to end, so the bench code never rots."""

import json
import subprocess
import sys

import pytest

from bench.__main__ import FULL_OUT, SECTIONS
from tests.conftest import ROOT

pytestmark = pytest.mark.integration


def test_quick_bench_runs_every_section_and_leaves_the_full_results_alone(services, tmp_path):
    before = FULL_OUT.read_bytes() if FULL_OUT.exists() else None
    out = tmp_path / "results.json"
    run = subprocess.run([sys.executable, "-m", "bench", "--quick", "--out", str(out)], cwd=ROOT,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]

    results = json.loads(out.read_text())
    assert results["mode"] == "quick"
    for section in SECTIONS:
        assert results[section]["status"] == "ok", (section, results[section])
    sink = results["sink_throughput"]
    for contender in ("project_sink", "project_sink_candles_off", "naive_insert_one", "raw_insert_many",
                      "store_without_kafka"):
        assert sink[contender]["stored"] > 0 and sink[contender]["ticks_per_s"] > 0
    assert set(results["latency"]["readable_ms"]) == {"p50", "p95", "p99"}
    assert results["latency"]["ticks_in_window"] > 0
    reads = results["reads"]
    for read in ("live_p95_ms", "history_24h_p95_ms", "history_168h_p95_ms", "coin_list_p95_ms"):
        assert len(reads[read]) == len(reads["archive_ticks"]) and all(v > 0 for v in reads[read])
    size = reads["sizes"][str(reads["archive_ticks"][0])]
    assert size["live"]["points"] > 0 and size["coin_list"]["points"] == 5 and size["history_24h"]["points"] > 0
    assert results["storage"]["bytes_per_tick"] > 0
    assert results["memory"]["worker_rss_mb_after_sink"] > 0
    assert {t["target"] for t in results["targets"]} and "Targets" in run.stdout
    assert (FULL_OUT.read_bytes() if FULL_OUT.exists() else None) == before
