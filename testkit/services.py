"""A Kafka broker and a MongoDB server of one's own, on free ports, run through scripts/services.sh like users
run them: fault tests and drills stop and kill these, never the shared servers."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Optional

from cryptoapp.storage import PriceStore
from testkit.audit import Audit, audit
from testkit.processes import ROOT, Worker, wait_for

SERVICES = ROOT / "scripts" / "services.sh"


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port_pair() -> int:
    """A free port whose successor is free too (Kafka's controller listens on port + 1).

    Taken below the kernel's ephemeral range (32768-60999 on Linux): a client that keeps connecting to
    a stopped server's ephemeral port can end up connected to itself, and the port then looks taken.
    """
    for _ in range(500):
        port = random.randrange(20000, 32000)
        if _free(port) and _free(port + 1):
            return port
    raise RuntimeError("no two adjacent free ports between 20000 and 32000 on 127.0.0.1")


class PrivateServices:
    """Kafka and MongoDB under `local` (data, logs, pid files), on ports nobody else uses.

    Fault drills stop and kill these, never the shared servers other tests use.
    """

    def __init__(self, local: Path, kafka_port: Optional[int] = None, mongo_port: Optional[int] = None):
        self.local = Path(local)
        self.kafka_port = kafka_port or free_port_pair()
        self.mongo_port = mongo_port or free_port_pair()
        self.kafka = f"127.0.0.1:{self.kafka_port}"
        self.mongo_uri = f"mongodb://127.0.0.1:{self.mongo_port}"

    @property
    def env(self) -> dict[str, str]:
        """The variables that point the script, a worker or a client at these instances."""
        return {"CRYPTOAPP_LOCAL": str(self.local), "KAFKA_BROKER": f"kafka://{self.kafka}",
                "MONGO_URI": self.mongo_uri, "CRYPTOAPP_EXTERNAL_SERVICES": "0"}

    def run(self, *args: str, timeout: float = 180, extra_env: Optional[dict[str, str]] = None) -> str:
        """`scripts/services.sh ARGS` against these instances; fails with the script's own words."""
        result = subprocess.run([str(SERVICES), *args], capture_output=True, text=True, timeout=timeout,
                                env={**os.environ, **self.env, **(extra_env or {})}, cwd=ROOT)
        if result.returncode != 0:
            raise RuntimeError(f"services.sh {' '.join(args)} failed ({result.returncode}): "
                               f"{result.stderr.strip() or result.stdout.strip()}")
        return result.stdout

    def up(self, *names: str) -> None:
        self._reuse_kafka_classpath()
        self.run("up", *(names or ("kafka", "mongo")))

    def _reuse_kafka_classpath(self) -> None:
        # services.sh resolves Kafka's classpath with Maven once per data directory (~12 s); the jar
        # list of the main .local/ is the same, so a fresh directory starts from a copy of it.
        mine = self.local / "kafka"
        if mine.exists():
            return
        mine.mkdir(parents=True)
        for listing in (ROOT / ".local" / "kafka").glob("classpath-*.txt"):
            shutil.copy(listing, mine / listing.name)

    def down(self, *names: str) -> None:
        self.run("down", *(names or ("kafka", "mongo")))

    def kill(self, *names: str) -> None:
        self.run("kill", *names)

    def worker(self, name: str, **env: str) -> Worker:
        """A worker (not started) on these instances, with its own app id, topic and database `name`."""
        return Worker(name, {**self.env, "CRYPTO_BACKFILL_HOURS": "0", **env})

    @contextlib.contextmanager
    def simulated_worker(self, kind: str, interval: float,
                         stored: Optional[int] = None) -> Iterator[tuple[str, Worker]]:
        """(name, worker): a worker on the simulated source, polling every `interval` s, with its own topic and
        database; not started, or with `stored` given started and holding that many documents. Afterwards it is
        stopped and Kafka and MongoDB are up again."""
        name = f"faults-{kind}-{time.strftime('%H%M%S')}"
        worker = self.worker(name, CRYPTO_SOURCE="simulated", CRYPTO_INTERVAL=str(interval))
        try:
            if stored is not None:
                worker.start()
                self.wait_stored(name, stored)
            yield name, worker
        finally:
            worker.stop()
            self.up()

    def documents(self, name: str, query: Optional[dict] = None) -> int:
        """How many documents worker `name` has stored (matching `query`)."""
        async def count() -> int:
            async with PriceStore(self.mongo_uri, name) as store:
                return await store.ticks.count(**(query or {}))

        with ThreadPoolExecutor(1) as pool:  # a loop of its own: the caller may have one running
            return pool.submit(asyncio.run, count()).result()

    def wait_stored(self, name: str, count: int, timeout: float = 60, what: str = "a steady stream stored") -> None:
        """Waits until worker `name` has stored at least `count` documents."""
        wait_for(lambda: self.documents(name) >= count, timeout, what)

    def all_stored(self, name: str, timeout: float = 90, worker: Optional[Worker] = None):
        """The audit of worker `name`, once every tick its topic held at the call is in MongoDB.

        Ticks published meanwhile are not waited for: a running worker's sink is always a moment behind
        its timer, and the target would keep moving. On a timeout the message tells how far the sink got
        and ends with the worker's last log lines.
        """
        target = self.audit(name).missing
        last = None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            last = self.audit(name)
            if not target & last.missing:
                return last
            time.sleep(1.0)
        still = sorted(target & last.missing)
        log = "\n".join(worker.log_text().splitlines()[-40:]) if worker else "(no worker given)"
        raise AssertionError(f"timed out after {timeout:.0f} s waiting for the {len(target)} ticks of {name} "
                             f"unstored at the start: {len(still)} still missing, e.g. "
                             f"{[(i, sorted(last.positions[i])) for i in still[:5]]} (found by _id: "
                             f"{self.documents(name, {'_id': {'$in': still[:5]}})}); committed offsets "
                             f"{last.committed}; the worker's last lines:\n{log}")

    def store_all_and_stop(self, name: str, worker: Worker) -> None:
        """Waits until worker `name` has stored every tick its topic holds (all_stored), then stops it: exit 0."""
        self.all_stored(name, worker=worker)
        assert worker.stop() == 0

    def audit(self, name: str) -> Audit:
        """audit() of worker `name`'s topic, dead letters and collection (run in a thread of its own)."""
        with ThreadPoolExecutor(1) as pool:
            return pool.submit(asyncio.run, audit(self.kafka, f"{name}-prices", self.mongo_uri, name, name)).result()

    def close(self, remove: bool = True) -> None:
        """Stops everything these instances run (worker included) and removes their data."""
        try:
            self.run("down", "worker", "kafka", "mongo")
        finally:
            if remove:
                shutil.rmtree(self.local, ignore_errors=True)


def assert_nothing_lost_or_doubled(result) -> None:
    """The audit of a stopped worker: every committed tick stored, nothing invented, nothing doubled.

    Ticks a stopping worker had fetched but not stored are uncommitted: the next start stores them.
    """
    assert result.committed_unstored == set(), f"committed but not stored: {sorted(result.committed_unstored)[:5]}"
    assert (len(result.invented), result.duplicates) == (0, 0)
