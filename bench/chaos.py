"""Fault drill: the pipeline under load on its own Kafka and MongoDB, bounced repeatedly, then every acknowledged tick accounted for.

    python -m bench.chaos [--duration S] [--short] [--interval S] [--json FILE] [--keep]

Kafka is hard-killed and restarted, MongoDB stopped and restarted, the worker `kill -9`-ed and
restarted, all through scripts/services.sh, while the simulated source publishes about 200 ticks/s.
Afterwards the topic is read end to end (every message in it was acknowledged by Kafka) and compared
with MongoDB: the exit status is 1 if an acknowledged tick is missing, a document was invented or
doubled, or a poison message was not parked in the dead-letter topic.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime as dt
import json
import logging
import os
import shutil
import sys
import time
import urllib.request
from pathlib import Path
from typing import Callable, Optional

from aiokafka import AIOKafkaProducer
from pymongo import MongoClient

from cryptoapp.schema import iso_z
from testkit.audit import Audit, audit
from testkit.processes import ROOT, free_port
from testkit.services import PrivateServices

FAULTS = ("kafka", "mongo", "worker")
# One of each kind per cycle, each a message the worker must park in the dead-letter topic.
POISON = (b"not json at all", b'{"ticker": 42, "value": "a lot"}',
          b'{"value": 1.0, "source": "chaos", "timestamp": "2025-11-21T10:00:00Z"}')
OUTAGE = {"kafka": 6.0, "mongo": 10.0, "worker": 0.0}  # seconds each service stays down
SHORT_OUTAGE = {"kafka": 3.0, "mongo": 5.0, "worker": 0.0}
RECOVERY_TIMEOUT = 120.0
DRAIN_TIMEOUT = 300.0
TABLE_TIMEOUT = 60.0


def say(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] chaos: {text}", flush=True)


# --- the drill ----------------------------------------------------------------------------------------

@dataclasses.dataclass
class Drill:
    services: PrivateServices
    name: str
    interval: float
    outage: dict = dataclasses.field(default_factory=lambda: dict(OUTAGE))
    web_port: int = dataclasses.field(default_factory=free_port)
    events: list = dataclasses.field(default_factory=list)

    @property
    def topic(self) -> str:
        return f"{self.name}-prices"

    def worker_env(self, **extra: str) -> dict[str, str]:
        return {"CRYPTO_SOURCE": "simulated", "CRYPTO_INTERVAL": str(self.interval), "CRYPTO_APP_ID": self.name,
                "CRYPTO_TOPIC": self.topic, "MONGO_DB": self.name, "WEB_PORT": str(self.web_port),
                "CRYPTO_DATADIR": str(self.services.local / "faust"), "CRYPTO_BACKFILL_HOURS": "0", **extra}

    def worker(self, action: str, **extra: str) -> None:
        self.services.run(action, "worker", extra_env=self.worker_env(**extra))

    def documents(self) -> int:
        client = MongoClient(self.services.mongo_uri, serverSelectionTimeoutMS=3000)
        try:
            return client[self.name].prices.estimated_document_count()
        except Exception:  # MongoDB may be the service that is down right now
            return -1
        finally:
            client.close()

    def wait(self, condition: Callable[[], object], timeout: float, what: str, every: float = 2.0) -> None:
        """Polls `condition` every `every` s (FerretDB counts by reading every document: not too often)."""
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise RuntimeError(f"{what} did not happen within {timeout:.0f} s; "
                                   f"logs in {self.services.local / 'logs'} (run with --keep to inspect)")
            time.sleep(every)

    def poison(self, payload: bytes) -> None:
        async def send():
            producer = AIOKafkaProducer(bootstrap_servers=self.services.kafka, acks="all")
            await producer.start()
            try:
                await producer.send_and_wait(self.topic, payload, key=b"BTC")
            finally:
                await producer.stop()
        asyncio.run(send())

    def fault(self, kind: str) -> float:
        """Inflicts one fault and restores the service; returns how long the pipeline needed to recover."""
        started = time.monotonic()
        if kind == "kafka":
            self.services.kill("kafka")
            time.sleep(self.outage[kind])  # the outage itself is the point of the drill
            self.services.up("kafka")
        elif kind == "mongo":
            self.services.down("mongo")
            time.sleep(self.outage[kind])
            self.services.up("mongo")
        else:
            self.services.kill("worker")
            self.worker("up")
        restored = time.monotonic()
        before = self.documents()  # counted once the service is back: only new writes show recovery
        self.wait(lambda: self.documents() > max(before, 0) + 50, RECOVERY_TIMEOUT,
                  f"the pipeline storing again after the {kind} fault")
        recovery = time.monotonic() - restored
        self.events.append({"fault": kind, "down_s": round(restored - started, 1), "recovered_s": round(recovery, 1)})
        say(f"{kind}: down {restored - started:.1f} s, storing again {recovery:.1f} s after it returned")
        return recovery

    def latest_prices(self) -> dict:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.web_port}/prices/", timeout=10) as resp:
            return json.loads(resp.read())


def run(duration: float, cycles: int, interval: float, keep: bool) -> dict:
    local = ROOT / ".local" / f"chaos-{os.getpid()}"
    shutil.rmtree(local, ignore_errors=True)
    services = PrivateServices(local)
    drill = Drill(services, name=f"chaos-{time.strftime('%H%M%S')}", interval=interval,
                  outage=dict(SHORT_OUTAGE if cycles == 1 else OUTAGE))
    report: dict = {"duration_s": duration, "cycles": cycles, "interval_s": interval, "faults": drill.events}
    finished = False
    try:
        say(f"private Kafka {services.kafka}, MongoDB {services.mongo_uri}, data in {local}")
        services.up()
        drill.worker("up")
        # Faust creates the topic with its partitions; a poison message sent before would auto-create it
        # with the broker's default of one, and the table would refuse the mismatch.
        drill.wait(lambda: drill.documents() > 0, RECOVERY_TIMEOUT, "the first ticks stored")
        started = time.monotonic()
        faults = [f for _ in range(cycles) for f in FAULTS]
        slot = duration / len(faults)
        for i, kind in enumerate(faults):
            slot_end = started + (i + 1) * slot
            drill.poison(POISON[i % len(POISON)])
            time.sleep(max(0.0, min(slot / 3, slot_end - time.monotonic())))  # load before the fault
            drill.fault(kind)
            time.sleep(max(0.0, slot_end - time.monotonic()))
        report["load_s"] = round(time.monotonic() - started, 1)
        say("faults done; stopping the worker (SIGTERM flushes its batch) and draining what is left")
        drill.worker("down")
        # One more worker, polling once a day, reads the rest of the topic: what it was fed stays put.
        drill.worker("up", CRYPTO_INTERVAL="86400")
        result: Optional[Audit] = None

        def drained() -> bool:
            nonlocal result
            result = asyncio.run(audit(services.kafka, drill.topic, services.mongo_uri, drill.name, drill.name))
            return not result.missing and not result.unparked

        try:
            drill.wait(drained, DRAIN_TIMEOUT, "MongoDB holding every acknowledged tick", every=5.0)
        except RuntimeError as exc:
            say(str(exc))

        def stale() -> list[str]:
            """Tickers whose latest_prices entry (restored from the changelog) is older than the topic's newest
            tick at the audit, or missing. Newer is fine: this worker's one poll may come after the audit."""
            shown = {t: dt.datetime.fromisoformat(v["timestamp"]) for t, v in drill.latest_prices().items()}
            return sorted(t for t, newest in result.newest.items()
                          if t not in shown or shown[t] < dt.datetime.fromisoformat(iso_z(newest)))  # ms, as served

        # The web server answers before the partitions (and the table) are assigned and restored.
        try:
            drill.wait(lambda: not stale(), TABLE_TIMEOUT, "latest_prices showing the newest tick of every coin")
        except RuntimeError as exc:
            say(str(exc))
        table_stale = stale()
        table = drill.latest_prices()
        drill.worker("down")
        result = asyncio.run(audit(services.kafka, drill.topic, services.mongo_uri, drill.name, drill.name))
        log = (services.local / "logs" / "worker.log").read_text(errors="replace")
        report.update(result.figures())
        report.update({
            "ticks_per_s": round(len(result.tick_ids) / report["load_s"], 1),
            # Nothing can be published while the broker or the worker is down (restart included).
            "ticks_per_s_while_up": round(len(result.tick_ids) / (report["load_s"] - sum(
                e["down_s"] for e in drill.events if e["fault"] in ("kafka", "worker"))), 1),
            "table_tickers": len(table), "table_stale": table_stale,
            "exits_70": log.count("exiting with a batch of") + log.count("did not stop within"),
            "worker_starts": log.count("[^Worker]: Starting..."),
        })
        report["ok"] = result.ok and not table_stale
        finished = True
        return report
    finally:
        services.close(remove=finished and not keep)  # a drill that broke off keeps its logs


def print_report(report: dict) -> None:
    rows = [
        ("load", f"{report['load_s']} s, ~{report['ticks_per_s_while_up']} ticks/s while Kafka and the worker were up, "
                 f"{report['ticks_per_s']} over the whole load (interval {report['interval_s']} s, 5 coins)"),
        ("faults", ", ".join(f"{e['fault']} (down {e['down_s']} s, storing again after {e['recovered_s']} s)"
                             for e in report["faults"])),
        ("acknowledged by Kafka", f"{report['acknowledged_messages']} messages = {report['acknowledged_ticks']} "
                                  f"distinct ticks + {report['kafka_repeats']} repeats + "
                                  f"{report['poison_in_topic']} poison"),
        ("documents in MongoDB", f"{report['documents']} ({report['distinct_observations']} distinct "
                                 "(sensor_id, timestamp))"),
        ("missing (acked, not stored)", f"{report['missing']} (of which committed: {report['committed_unstored']})"),
        ("invented (stored, never acked)", report["invented"]),
        ("duplicates", report["duplicates"]),
        ("dead letters", f"{report['dlq_entries']} entries for {report['dlq_distinct']} distinct messages; "
                         f"unparked poison {report['unparked']}; reasons and originals intact: {report['dlq_intact']}"),
        ("latest_prices", f"{report['table_tickers']} tickers, stale: {report['table_stale'] or 'none'}"),
        ("worker", f"{report['worker_starts']} starts, {report['exits_70']} stops ended with code 70 "
                   "(a batch not written: offsets left uncommitted)"),
        ("verdict", "OK: nothing lost, nothing doubled" if report["ok"] else "FAILED"),
    ]
    width = max(len(k) for k, _ in rows)
    print()
    for key, value in rows:
        print(f"  {key:<{width}}  {value}")
    print(flush=True)


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.chaos", description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, help="seconds of load with faults (default 240, --short 45)")
    parser.add_argument("--short", action="store_true", help="one fault of each kind instead of three")
    parser.add_argument("--interval", type=float, default=0.015,
                        help="poll interval of the simulated source in seconds (default 0.015: about 200 ticks/s, "
                             "since each poll also waits for Kafka's acknowledgement)")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument("--keep", action="store_true", help="keep the private servers' data and logs")
    args = parser.parse_args(argv)
    # The drill's own Kafka clients retry through the outages it causes; their errors are expected.
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    cycles = 1 if args.short else 3
    duration = args.duration or (45.0 if args.short else 240.0)
    try:
        report = run(duration, cycles, args.interval, args.keep)
    except RuntimeError as exc:
        print(f"chaos: {exc}", file=sys.stderr)
        return 2
    print_report(report)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, default=str))
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
