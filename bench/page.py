"""The first hour's costs: the idle demo's load on FerretDB, and the dashboard's first paint and full page in Chromium.

One worker runs as `make demo` runs it (the simulated source every 2 s, a week of simulated history stored at
start-up) into a database of its own. With no page open, FerretDB's CPU over a minute (psutil, the server process:
a share of one core) is what the idle demo costs. Then the dashboard is served as `make run` serves it and opened in
the real Chromium the tests use, a fresh browser context per load: first paint is navigation start to the first
price card; the full page is navigation start to every card and both live charts drawn.
"""

from __future__ import annotations

import statistics
import time

import psutil

from bench import harness
from testkit import demo
from testkit.dashboard import CHROMIUM, CHROMIUM_ARGS, dashboard_server
from testkit.processes import Worker, wait_for

IDLE_S, QUICK_IDLE_S = 60.0, 10.0
LOADS, QUICK_LOADS = 5, 2
COINS = demo.COINS
LIVE_CHARTS = 2  # the live prices and the volume chart
VIEWPORT = {"width": 1400, "height": 900}


def idle_cpu(worker: Worker, seconds: float) -> dict:
    """FerretDB's and the worker's CPU over `seconds` of the running demo, as percent of one core."""
    server = harness.mongo_server_process()
    if server is None:
        raise RuntimeError("no MongoDB server process on this machine to measure (a remote MONGO_URI?)")
    processes = {"mongo": server, "worker": psutil.Process(worker.proc.pid)}
    before, started = {k: harness.cpu_seconds(p) for k, p in processes.items()}, time.perf_counter()
    wait_for(lambda: time.perf_counter() - started >= seconds, seconds + 5, "the idle minute", interval=1.0)
    elapsed = time.perf_counter() - started
    return {**{f"{k}_cpu_pct": round(100 * (harness.cpu_seconds(p) - before[k]) / elapsed, 1)
               for k, p in processes.items()}, "idle_s": round(elapsed)}


def _load(browser, url: str) -> tuple[float, float]:
    """(first paint, full page) of one load in a fresh context, in ms from navigation start."""
    context = browser.new_context(viewport=VIEWPORT)
    try:
        page = context.new_page()
        started = time.perf_counter()
        page.goto(url)
        page.get_by_test_id("stMetric").first.wait_for(state="visible", timeout=60_000)
        first = time.perf_counter() - started
        page.wait_for_function(
            f"document.querySelectorAll('[data-testid=stMetric]').length >= {COINS} && "
            f"document.querySelectorAll('[data-testid=stPlotlyChart] .main-svg').length >= {LIVE_CHARTS}",
            timeout=60_000)
        full = time.perf_counter() - started
        return 1000 * first, 1000 * full
    finally:
        context.close()


def page_loads(url: str, loads: int) -> dict:
    """The page's first load (a cold server: nothing cached yet) and the median of `loads` later ones."""
    from playwright.sync_api import sync_playwright  # the browser driver only where a page is measured

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            cold = _load(browser, url)
            warm = [_load(browser, url) for _ in range(loads)]
        finally:
            browser.close()
    return {"cold_first_paint_ms": round(cold[0]), "cold_full_ms": round(cold[1]),
            "first_paint_ms": round(statistics.median(w[0] for w in warm)),
            "full_ms": round(statistics.median(w[1] for w in warm)),
            "loads": [[round(a), round(b)] for a, b in warm]}


def run(quick: bool) -> dict:
    name = harness.unique_name("page")
    worker, client = None, harness.mongo()
    try:
        worker = demo.start(name)
        demo.wait_history_stored(worker, client)
        demo.wait_settled(worker, harness.KAFKA)
        idle = idle_cpu(worker, QUICK_IDLE_S if quick else IDLE_S)
        with dashboard_server({"MONGO_DB": name, "MONGO_URI": harness.MONGO_URI}, f"bench-{name}-dashboard.log") as url:
            loads = page_loads(url, QUICK_LOADS if quick else LOADS)
    finally:
        if worker is not None:
            worker.stop()
        harness.remove_run(client, name)
    return {"idle": idle, **loads, "viewport": VIEWPORT, "worker": "make demo's settings", "database": name}
