"""What every benchmark shares: service addresses, unique names, simulated ticks, Kafka topics and percentiles."""

from __future__ import annotations

import asyncio
import datetime as dt
import math
import os
import platform
import re
import secrets
import subprocess
import time
from pathlib import Path
from typing import Callable, Iterable, Iterator, Optional

import psutil
from aiokafka.admin import NewTopic
from aiokafka.errors import CoordinatorLoadInProgressError, CoordinatorNotAvailableError, NotCoordinatorError
from pymongo import MongoClient

from cryptoapp.coins import resolve_all
from cryptoapp.prices.models import PriceTick
from cryptoapp.schema import DEFAULT_SYMBOLS, PRICES_INDEXES, UTC
from cryptoapp.settings import load
from cryptoapp.sources.simulated import SimulatedSource
from cryptoapp.uris import kafka_servers, mongo_servers
from testkit.audit import kafka_admin, publish

ROOT = Path(__file__).resolve().parent.parent
MONGO_URI = load().mongo_uri
KAFKA = kafka_servers(load().kafka_broker)[0]


def unique_name(kind: str) -> str:
    """A topic / database / app id no other run uses (MongoDB database names allow no dots)."""
    return f"bench-{kind}-{os.getpid()}-{secrets.token_hex(3)}"


def mongo() -> MongoClient:
    return MongoClient(MONGO_URI, tz_aware=True, serverSelectionTimeoutMS=10_000, appname="cryptoapp-bench")


def create_indexes(collection) -> None:
    """The worker's own index declaration, so every baseline writes into the same shape of collection."""
    for keys, name in PRICES_INDEXES:
        collection.create_index(list(keys), name=name)


def iter_simulated_ticks(count: int, end: dt.datetime, spacing: dt.timedelta,
                         coins: Iterable[str] = DEFAULT_SYMBOLS) -> Iterator[PriceTick]:
    """`count` ticks of the project's simulated source, one step of every coin per `spacing`, the last step at `end`."""
    source = SimulatedSource(resolve_all(coins))
    steps = math.ceil(count / len(source.coins))
    skip = steps * len(source.coins) - count  # the first step gives only some coins, so exactly `count` come out
    for i in range(steps):
        for tick in source.step(end - spacing * (steps - 1 - i)):
            if skip:
                skip -= 1
                continue
            yield tick


def simulated_ticks(count: int, end: dt.datetime, spacing: dt.timedelta,
                    coins: Iterable[str] = DEFAULT_SYMBOLS) -> list[PriceTick]:
    return list(iter_simulated_ticks(count, end, spacing, coins))


def percentiles(values: list[float], qs=(50, 95, 99)) -> dict[str, Optional[float]]:
    """Nearest-rank percentiles; infinite values (never observed) make a percentile None."""
    if not values:
        return {f"p{q}": None for q in qs}
    ordered = sorted(values)
    out = {}
    for q in qs:
        v = ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]
        out[f"p{q}"] = None if math.isinf(v) else round(v, 1)
    return out


async def create_topic(name: str, partitions: int) -> None:
    async with kafka_admin(KAFKA) as admin:
        await admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])


def prefilled_topic(topic: str, ticks: list[PriceTick]) -> float:
    """Creates `topic` with the worker's partition count and prefills it with `ticks`; seconds until all acked."""
    asyncio.run(create_topic(topic, load().partitions))
    return asyncio.run(prefill(topic, ticks))


def remove_run(client, name: str) -> None:
    """Drops run `name`'s database and topics (the worker's app id is the name), then closes the client."""
    client.drop_database(name)
    asyncio.run(delete_topics_with_prefix(name))
    client.close()


async def delete_topics_with_prefix(*prefixes: str) -> list[str]:
    """Removes the topics a run created (its own, and those Faust made for the worker's app id)."""
    async with kafka_admin(KAFKA) as admin:
        names = [t for t in await admin.list_topics() if t.startswith(prefixes)]
        if names:
            await admin.delete_topics(names)
        return names


async def wait_committed(group: str, topic: str, expected: int, timeout: float, poll: float,
                         alive: Callable[[], object] = lambda: True) -> bool:
    """Waits until consumer group `group` has committed `expected` offsets of `topic`; False after `timeout` s.

    The sink commits a batch's offsets only after writing it, and asking Kafka costs the MongoDB
    server nothing, whereas counting documents on FerretDB scans the collection and slows the sink. A freshly
    started Kafka has no group coordinator until its offsets topic is ready: asked again until the deadline.
    """
    async with kafka_admin(KAFKA) as admin:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            alive()
            try:
                offsets = await admin.list_consumer_group_offsets(group)
            except (CoordinatorNotAvailableError, CoordinatorLoadInProgressError, NotCoordinatorError):
                await asyncio.sleep(poll)
                continue
            if sum(o.offset for tp, o in offsets.items() if tp.topic == topic and o.offset > 0) >= expected:
                return True
            await asyncio.sleep(poll)
        return False


async def committed_count(group: str, topic: str) -> int:
    """The offsets consumer group `group` has committed of `topic`, summed over its partitions."""
    async with kafka_admin(KAFKA) as admin:
        offsets = await admin.list_consumer_group_offsets(group)
    return sum(o.offset for tp, o in offsets.items() if tp.topic == topic and o.offset > 0)


async def prefill(topic: str, ticks: list[PriceTick]) -> float:
    """Publishes ticks as the worker does (key = ticker bytes, value = PriceTick JSON); seconds until all acked."""
    return await publish(KAFKA, topic, ticks, linger_ms=20, max_batch_size=1 << 20)


def mongo_server_process() -> Optional[psutil.Process]:
    """The local process listening on the MongoDB port, to read its CPU time; None when it is not ours to see."""
    port = int(mongo_servers(MONGO_URI).split(", ")[0].rsplit(":", 1)[-1])
    try:
        for conn in psutil.net_connections("tcp"):
            if conn.status == psutil.CONN_LISTEN and conn.laddr.port == port and conn.pid:
                return psutil.Process(conn.pid)
    except (psutil.AccessDenied, psutil.NoSuchProcess):
        pass
    return None


def cpu_seconds(proc: Optional[psutil.Process]) -> Optional[float]:
    try:
        times = proc.cpu_times()
        return times.user + times.system
    except (AttributeError, psutil.Error):
        return None


def machine(client: MongoClient) -> dict:
    """What the numbers were measured on: cores, memory, CPU, servers and their versions, load."""
    info = client.admin.command("buildInfo")
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    status = subprocess.run([str(ROOT / "scripts" / "services.sh"), "status"], capture_output=True, text=True,
                            timeout=60).stdout
    kafka = next((m.group(1) for m in re.finditer(r"^kafka\s+\S+\s+(Apache Kafka [\d.]+)", status, re.M)), "unknown")
    server = f"FerretDB {info['ferretdbVersion']}" if "ferretdbVersion" in info else f"MongoDB {info.get('version')}"
    backend = next((m.group(1) for m in re.finditer(r"^mongo\s+\S+\s+FerretDB \S+ \((.+?)\)", status, re.M)), None)
    return {
        "cores": psutil.cpu_count(), "memory_gb": round(psutil.virtual_memory().total / 2**30, 1), "cpu": cpu,
        "os": f"{platform.system()} {platform.release()}", "python": platform.python_version(),
        "mongo_server": server + (f" ({backend})" if backend else ""), "mongo_wire_version": info.get("version"),
        "kafka": kafka, "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "measured_at": dt.datetime.now(UTC).isoformat(timespec="seconds"),
    }


def rss_mb(proc: psutil.Process) -> float:
    return round(proc.memory_info().rss / 2**20, 1)
