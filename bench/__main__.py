"""`python -m bench [--quick]`: runs the benchmarks, prints a table of results against targets, writes them as JSON."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Callable, Optional

from bench import (alerts, analytics, cli, forecasts, harness, latency, page, reads, scale, sink_throughput, storage_cost,
                   trades)
from bench.profiling import Profiler

SECTIONS = ("sink", "latency", "scale", "reads", "storage", "alerts", "forecasts", "analytics", "page", "cli", "trades")
FULL_OUT = harness.ROOT / "bench" / "results.json"
# Quick runs only prove the code still works: they must never replace the numbers of a full run.
QUICK_OUT = harness.ROOT / ".local" / "bench" / "results-quick.json"


def _run_section(name: str, fn: Callable[[], dict]) -> dict:
    print(f"bench: {name} ...", file=sys.stderr, flush=True)
    started = time.perf_counter()
    try:
        result = {"status": "ok", **fn()}
    except Exception as exc:  # one broken benchmark must not hide the others' numbers
        traceback.print_exc()
        result = {"status": "error", "error": f"{exc.__class__.__name__}: {exc}"}
    result["section_s"] = round(time.perf_counter() - started, 1)
    print(f"bench: {name} {result['status']} in {result['section_s']} s", file=sys.stderr, flush=True)
    return result


def _get(results: dict, *path) -> Optional[float]:
    node = results
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


def targets(results: dict) -> list[dict]:
    """Each target with its measured value; met is None when the number could not be measured."""
    def row(name, value, target, ok):
        return {"target": name, "value": value, "goal": target, "met": None if value is None else ok(value)}

    def ok(section: str) -> dict:
        return results.get(section, {}) if _get(results, section, "status") == "ok" else {}

    sink, lat, sc, rd = ok("sink"), ok("latency"), ok("scale"), ok("reads")
    p99 = dict(zip(lat.get("rate") or [], lat.get("p99_ms") or []))
    return [
        row("worker CPU per tick, candles + views on (us)", sink.get("worker_cpu_us_per_tick"), "<= 100",
            lambda v: v <= 100),
        row("worker CPU per tick, CRYPTO_CANDLES=0 (us)", sink.get("worker_cpu_us_per_tick_bare"), "<= 50",
            lambda v: v <= 50),
        row("sink >= 5 x naive insert_one (10 x the goal)", sink.get("sink_vs_naive"), ">= 5", lambda v: v >= 5),
        row("sink >= 0.5 x raw insert_many", sink.get("sink_vs_ceiling"), ">= 0.5", lambda v: v >= 0.5),
        row("latency p99 at 1,000 ticks/s (ms, creation -> readable)", p99.get(1000) if lat else None, "< 250",
            lambda v: v < 250),
        row("latency p99 at 5,000 ticks/s (ms, creation -> readable)", p99.get(5000) if lat else None, "< 1000",
            lambda v: v < 1000),
        row("two workers / one (ticks/s)", sc.get("two_over_one"), f">= {scale.TARGET:g}", lambda v: v >= scale.TARGET),
        row("worker CPU per tick, two workers / one", sc.get("cpu_per_tick_ratio"), "<= 1.15", lambda v: v <= 1.15),
        row("largest worker's share of the ticks x N (2 and 4 workers)", sc.get("share_spread"), "<= 1.15",
            lambda v: v <= 1.15),
        row(f"every read's p95 at {_fmt((rd.get('archive_ticks') or [None])[-1])} ticks (ms)",
            rd.get("worst_p95_ms_at_largest"), f"< {reads.TARGET_MS:g}", lambda v: v < reads.TARGET_MS),
        row("reads flat: p95 at the largest / at the smallest archive", rd.get("largest_over_smallest"),
            f"<= {reads.FLAT:g}", lambda v: v <= reads.FLAT),
        row("sink with candles on / off", sink.get("candles_sink_ratio"), ">= 0.8", lambda v: v >= 0.8),
        row(f"alerts p99 (ms, tick -> stored and webhook received, {alerts.RULES:,} rules)", ok("alerts").get("p99_ms"),
            "< 1000", lambda v: v < 1000),
        row("sink with forecasts on / off", ok("forecasts").get("sink_ratio"), ">= 0.9", lambda v: v >= 0.9),
        row("worker RSS after sink run (MB)", _get(sink, "project_sink", "worker_rss_mb"), "< 250",
            lambda v: v < 250),
        row("dashboard first paint, the demo's data (ms)", ok("page").get("first_paint_ms"), "< 1500",
            lambda v: v < 1500),
        row("dashboard full page, the demo's data (ms)", ok("page").get("full_ms"), "< 3000", lambda v: v < 3000),
        row("cryptoapp --help (ms, wall)", ok("cli").get("help_ms"), "< 500", lambda v: v < 500),
        row("trades into candles (trades/s, the worker)", ok("trades").get("trades_per_s"), f">= {trades.TARGET:,}",
            lambda v: v >= trades.TARGET),
        row("FerretDB CPU under the idle demo (% of a core)", ok("idle").get("mongo_cpu_pct"), "< 10",
            lambda v: v < 10),
    ]


def _fmt(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.1f}" if abs(value) < 10_000 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def table(results: dict) -> str:
    """The measurements and the targets as plain text, one line each."""
    lines = []

    def add(what, value, unit=""):
        lines.append(f"  {what:<52} {_fmt(value):>12} {unit}")

    sink = results.get("sink", {})
    if sink.get("status") == "ok":
        lines.append(f"Sink throughput ({sink['ticks']:,} ticks already in Kafka)")
        for key, what in (("project_sink", "(a) project sink (worker subprocess)"),
                          ("project_sink_candles_off", "(a') the same sink with CRYPTO_CANDLES=0"),
                          ("naive_insert_one", "(b) naive consumer, insert_one per message"),
                          ("raw_insert_many", "(c) raw insert_many, no Kafka (ceiling)"),
                          ("store_without_kafka", "(d) the sink's PriceStore writes, no Kafka/Faust")):
            part = sink[key]
            note = "" if part.get("completed") else f"  (stopped at {part['time_cap_s']:.0f} s: {part['stored']:,} stored)"
            add(what, part["ticks_per_s"], "ticks/s" + note)
        add("worker start-up (spawn -> first write)", _get(sink, "project_sink", "startup_s"), "s")
    lat = results.get("latency", {})
    if lat.get("status") == "ok":
        lines.append("End-to-end latency, creation -> readable (the batch's acknowledged write), exact per tick")
        for run in lat["runs"]:
            q = run["readable_ms"]
            add(f"{run['target_rate']:,} ticks/s ({run['achieved_rate']:,.0f} sent): p50 / p95 / p99",
                f"{_fmt(q['p50'])} / {_fmt(q['p95'])} / {_fmt(q['p99'])}", "ms")
            add("  window ticks stored by the deadline", run["stored_by_deadline"],
                f"of {run['ticks_in_window']:,} (drain up to {run['drain_limit_s']:.0f} s)")
    sc = results.get("scale", {})
    if sc.get("status") == "ok":
        lines.append(f"Scale ({sc['ticks']:,} ticks already in Kafka, workers sharing one group)")
        for count, rate in zip(sc["workers"], sc["ticks_per_s"]):
            add(f"{count} worker{'s' if count > 1 else ''}", rate, "ticks/s")
    pg = results.get("page", {})
    if pg.get("status") == "ok":
        lines.append("The first hour: make demo's worker, the dashboard in Chromium (1400 x 900)")
        add("first paint / full page, median of later loads", f"{pg['first_paint_ms']:,} / {pg['full_ms']:,}", "ms")
        add("first paint / full page, the first load", f"{pg['cold_first_paint_ms']:,} / {pg['cold_full_ms']:,}", "ms")
        idle = results["idle"]
        add("idle demo: FerretDB / worker CPU", f"{idle['mongo_cpu_pct']} / {idle['worker_cpu_pct']}", "% of a core")
    if results.get("trades", {}).get("status") == "ok":
        add("trades into candles / worker RSS", f"{results['trades']['trades_per_s']} / "
            f"{results['trades']['worker_rss_mb']}", "trades/s / MB")
    if results.get("cli", {}).get("status") == "ok":
        add("cryptoapp --help / --version, median wall time", f"{results['cli']['help_ms']} / "
            f"{results['cli']['version_ms']}", "ms")
    for name, keys in (("alerts", ("rules", "p99_ms")), ("forecasts", ("sink_ratio",)),
                       ("analytics", ("ticks", "export_s", "jobs_s"))):
        part = results.get(name, {})
        if part.get("status") == "ok":
            lines.append(name.capitalize())
            for key in keys:
                add(key, part.get(key))
    rd = results.get("reads", {})
    if rd.get("status") == "ok":
        lines.append("Dashboard reads of the serving views, p95 (ms), by archive size (ticks of five coins, 1/min)")
        lines.append(f"  {'archive ticks':<52} " + " ".join(f"{n:>12,}" for n in rd["archive_ticks"]))
        for key, what in (("live_p95_ms", "live tab (load_live)"), ("history_24h_p95_ms", "history 24 h"),
                          ("history_168h_p95_ms", "history 168 h"), ("coin_list_p95_ms", "coin list"),
                          ("archive_scan_168h_p95_ms", "baseline: 168 h filtered from the archive")):
            lines.append(f"  {what:<52} " + " ".join(f"{_fmt(v):>12}" for v in rd[key]))
    elif rd.get("status") not in (None, "not run"):
        lines.append(f"Reads: {rd.get('status')} ({rd.get('reason') or rd.get('error')})")
    store = results.get("storage", {})
    if store.get("status") == "ok":
        lines.append("Storage (collStats size + totalIndexSize)")
        for label, entry in store["datasets"].items():
            add(f"{label} data: bytes per tick incl. indexes", entry["bytes_per_tick"], "B")
        add("one coin, one tick a minute, 30 days", store["month_1_per_minute_mb"],
            f"MB  (seed's claim: {store['seed_claim_mb_per_month']:,.0f} MB)")
    if sink.get("status") == "ok":
        add("worker RSS after the sink run", _get(sink, "project_sink", "worker_rss_mb"), "MB")
    lines.append("Targets")
    for t in results["targets"]:
        met = {True: "met", False: "MISSED", None: "not measured"}[t["met"]]
        lines.append(f"  {t['target']:<52} {_fmt(t['value']):>12}  goal {t['goal']:<7} {met}")
    for name in SECTIONS:
        if results.get(name, {}).get("status") == "error":
            lines.append(f"{name}: ERROR {results[name]['error']}")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true",
                        help="small counts (2,000 ticks, 5 s latency window): proves the code runs, in under a minute")
    parser.add_argument("--only", default=",".join(SECTIONS), help=f"comma-separated subset of {', '.join(SECTIONS)}")
    parser.add_argument("--out", type=Path, help=f"JSON output (default {FULL_OUT.relative_to(harness.ROOT)}, "
                                                  f"or {QUICK_OUT.relative_to(harness.ROOT)} with --quick)")
    parser.add_argument("--profile", type=Path, metavar="DIR",
                        help="record py-spy profiles (collapsed stacks) of the worker and query processes into DIR")
    args = parser.parse_args(argv)
    chosen = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = set(chosen) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown section(s) {sorted(unknown)}: choose from {', '.join(SECTIONS)}")
    out = args.out or (QUICK_OUT if args.quick else FULL_OUT)
    profiler = Profiler(args.profile)
    os.chdir(harness.ROOT)  # the worker helper and the query probe run from the project root

    started = time.perf_counter()
    client = harness.mongo()
    results = {"mode": "quick" if args.quick else "full", "command": "make bench" + (" BENCH_ARGS=--quick" if args.quick else ""),
               "machine": harness.machine(client)}
    client.close()
    runners = {
        "sink": lambda: sink_throughput.run(args.quick, profiler),
        "latency": lambda: latency.run(args.quick, profiler),
        "scale": lambda: scale.run(args.quick),
        "reads": lambda: reads.run(args.quick),
        "storage": lambda: storage_cost.run(args.quick),
        "alerts": lambda: alerts.run(args.quick, profiler),
        "forecasts": lambda: forecasts.run(args.quick, profiler),
        "analytics": lambda: analytics.run(args.quick),
        "page": lambda: page.run(args.quick),
        "cli": lambda: cli.run(args.quick),
        "trades": lambda: trades.run(args.quick),
    }
    for name in SECTIONS:
        results[name] = _run_section(name, runners[name]) if name in chosen else {"status": "not run"}
    # One demo worker serves both: the idle minute, then the page loads. The idle figures get their own key.
    results["idle"] = {"status": results["page"]["status"], **results["page"].pop("idle", {})}
    results["memory"] = {
        "worker_rss_mb_after_sink": _get(results, "sink", "project_sink", "worker_rss_mb"),
        "worker_rss_mb_after_latency": [r.get("worker_rss_mb") for r in _get(results, "latency", "runs") or []],
        "how": "psutil RSS of the worker subprocess before it is stopped",
    }
    results["targets"] = targets(results)
    results["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    results["duration_s"] = round(time.perf_counter() - started, 1)
    if profiler.written:
        results["profiles"] = profiler.written
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(table(results))
    print(f"\n{results['mode']} run in {results['duration_s']:.0f} s; results in {out}")
    return 1 if any(results[s].get("status") == "error" for s in SECTIONS) else 0


if __name__ == "__main__":
    sys.exit(main())
