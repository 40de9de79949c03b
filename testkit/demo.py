"""make demo's worker (the simulated source every 2 s, a week of simulated history stored at start-up) in a database
of its own, for the page bench and the README's screenshots alike."""

from __future__ import annotations

import asyncio
import re

from pymongo import MongoClient

from cryptoapp.schema import PRICES
from testkit.audit import uncommitted
from testkit.processes import Worker, wait_for

COINS = 5  # the default coins, one card each
DEMO = {"CRYPTO_SOURCES": "simulated", "CRYPTO_SOURCE": "simulated", "CRYPTO_INTERVAL": "2",
        "CRYPTO_BACKFILL_HOURS": "168"}
HISTORY = re.compile(r"simulated history: (\d+) simulated ticks published")


def start(name: str, env: dict[str, str] | None = None) -> Worker:
    """The demo's worker started, with a price for every coin served; the history is still being stored."""
    worker = Worker(name, {**DEMO, **(env or {})}).start()
    wait_for(lambda: len((worker.get("/prices/")[1] or {})) >= COINS, 120, "a price for every demo coin")
    return worker


def wait_history_stored(worker: Worker, client: MongoClient) -> None:
    """Until the week of simulated history the demo publishes at start-up is in the archive."""
    published = wait_for(lambda: HISTORY.search(worker.log_text()), 120, "the demo's simulated history published")
    wait_for(lambda: client[worker.name][PRICES].estimated_document_count() >= int(published[1]), 300,
             "the demo's simulated history stored", interval=1.0)


def wait_settled(worker: Worker, bootstrap: str) -> None:
    """Until the pipeline has caught up with the history: every record of the prices, view-ticks and candles topics
    committed by the worker's group (the candles and views of a week of history take FerretDB half a minute more
    after the archive holds it; an idle figure taken before that measures the catching up)."""
    topics = [f"{worker.name}-{t}" for t in ("prices", "view-ticks", "candles")]

    def behind() -> int:
        return sum(asyncio.run(uncommitted(bootstrap, worker.name, topic)) for topic in topics)

    wait_for(lambda: behind() == 0, 300, "the demo's pipeline caught up with its history", interval=2.0)
