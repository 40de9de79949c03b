"""`make screenshots`: the README's pictures of all four tabs, taken from make demo's data.

A demo worker (simulated prices every 2 s, a week of simulated history) runs into a database of its own
(`crypto_demo`, dropped afterwards; the user's `crypto` is never touched); `make analytics`'s three steps run on it
(Spark, about 3 min); two alert rules are added through the CLI, one of which fires at the next tick; then the
dashboard is served as `make run` serves it and each tab is captured in Chromium at 1400 x 900 into docs/img/.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from pymongo import MongoClient

from bench.harness import remove_run
from cryptoapp.schema import ALERTS
from cryptoapp.settings.dashboard import load
from testkit import demo
from testkit.dashboard import CHROMIUM, CHROMIUM_ARGS, ROOT, dashboard_server
from testkit.processes import wait_for

NAME = "crypto_demo"
OUT = ROOT / "docs" / "img"
VIEWPORT = {"width": 1400, "height": 900}
BIN = Path(sys.executable).parent
# Each tab's picture, what shows it drawn, and how many plotly charts it draws at least (each must have its SVG).
SHOTS = {"Real-time": ("realtime.png", "stMetric", 2), "History": ("history.png", "stPlotlyChart", 1),
         "Alerts": ("alerts.png", "stDataFrame", 0), "Analytics": ("analytics.png", "stPlotlyChart", 1)}


def cli(env: dict[str, str], *args: str) -> None:
    subprocess.run([str(BIN / "cryptoapp"), *args], env=env, cwd=ROOT, check=True)


def analytics(env: dict[str, str]) -> None:
    """make analytics on the demo's database: export to Parquet, the Spark jobs, the results loaded back."""
    where = ROOT / ".local" / "analytics-screenshots"
    cli(env, "export", "parquet", "--out", str(where / "parquet"))
    subprocess.run([str(BIN / "python"), "-m", "cryptoapp.analytics.submit", "--in", str(where / "parquet"),
                    "--out", str(where / "results"), "--days", "90"], env=env, cwd=ROOT, check=True)
    cli(env, "analytics", "load", "--results", str(where / "results"))


def capture(url: str) -> None:
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport=VIEWPORT)
        for tab, (file, drawn, charts) in SHOTS.items():
            page.goto(f"{url}/?tab={tab}")
            expect(page.get_by_test_id(drawn).first).to_be_visible(timeout=120_000)
            # The tab's charts drawn (plotly's SVG in each), and Streamlit done running its script.
            page.wait_for_function(f"document.querySelectorAll('[data-testid=stPlotlyChart] .main-svg').length >= "
                                   f"{charts}", timeout=60_000)
            expect(page.get_by_test_id("stStatusWidget")).to_be_hidden(timeout=60_000)
            expect(page.get_by_test_id("stSkeleton")).to_have_count(0, timeout=60_000)  # every widget in place
            page.screenshot(path=str(OUT / file), full_page=True)
            print(f"screenshots: {OUT / file}")
        browser.close()


def main() -> int:
    uri = load(os.environ).mongo_uri
    client = MongoClient(uri, tz_aware=True, serverSelectionTimeoutMS=10_000)
    client.drop_database(NAME)
    env = {**os.environ, "MONGO_URI": uri, "MONGO_DB": NAME}
    worker = None
    try:
        worker = demo.start(NAME)
        print("screenshots: the demo worker runs; storing its week of simulated history")
        demo.wait_history_stored(worker, client)
        cli(env, "alerts", "add", "BTC", "above", "1")  # fires at the next tick
        cli(env, "alerts", "add", "ETH", "below", "1", "--webhook", "https://hooks.example.com/alerts")
        analytics(env)
        wait_for(lambda: client[NAME][ALERTS].count_documents({}) > 0, 60, "the BTC alert's firing")
        OUT.mkdir(parents=True, exist_ok=True)
        with dashboard_server({"MONGO_URI": uri, "MONGO_DB": NAME}, "screenshots-dashboard.log") as url:
            capture(url)
    finally:
        if worker is not None:
            worker.stop()
        remove_run(client, NAME)  # its database and its topics
    return 0


if __name__ == "__main__":
    sys.exit(main())
