"""Sink throughput: ticks already in Kafka into MongoDB by the worker's sink, beside a naive consumer and raw writes."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from typing import Optional

import psutil
from aiokafka import AIOKafkaConsumer
from pymongo import AsyncMongoClient

from bench import harness
from bench.profiling import Profiler
from cryptoapp.prices.models import decode_tick
from cryptoapp.schema import PRICES_INDEXES, UTC
from cryptoapp.settings import load
from cryptoapp.storage import PriceStore
from cryptoapp.storage.ticks import to_document
from testkit.processes import Worker

SINK_BATCH = 500  # the sink's take_events batch size, so the no-Kafka baseline writes batches the sink could


def _rate(stored: int, seconds: float) -> float:
    return round(stored / seconds, 1) if seconds > 0 else 0.0


def _capped_run(stored: int, seconds: float, completed: bool, time_cap: float) -> dict:
    """The figures of a run that stops at its time cap: what it stored, how fast, whether it got through."""
    return {"stored": stored, "seconds": round(seconds, 2), "ticks_per_s": _rate(stored, seconds),
            "completed": completed, "time_cap_s": time_cap}


def raw_insert_many(client, docs: list[dict]) -> dict:
    """(c) The ceiling: the server's own insert_many of the same documents, no Kafka, no upsert."""
    name = harness.unique_name("raw")
    collection = client[name].prices
    try:
        harness.create_indexes(collection)
        started = time.perf_counter()
        collection.insert_many(docs, ordered=False)
        seconds = time.perf_counter() - started
        return {"stored": collection.count_documents({}), "seconds": round(seconds, 2),
                "ticks_per_s": _rate(len(docs), seconds), "completed": True}
    finally:
        client.drop_database(name)


async def _store_batches(database: str, ticks, time_cap: float) -> dict:
    store = PriceStore(harness.MONGO_URI, database)
    await store.on_start()
    try:
        stored, started = 0, time.perf_counter()
        for i in range(0, len(ticks), SINK_BATCH):
            result = await store.ticks.upsert_until_stored(ticks[i:i + SINK_BATCH])
            stored += result.inserted + result.updated
            if time.perf_counter() - started > time_cap:
                break
        seconds = time.perf_counter() - started
    finally:
        await store.on_stop()
    return _capped_run(stored, seconds, stored == len(ticks), time_cap)


def store_without_kafka(client, ticks, time_cap: float) -> dict:
    """(d) The sink's own write path (cryptoapp.storage.PriceStore, batches of 500) with no Kafka and no Faust."""
    name = harness.unique_name("store")
    try:
        return asyncio.run(_store_batches(name, ticks, time_cap))
    finally:
        client.drop_database(name)


async def _naive_consume(topic: str, database: str, total: int, time_cap: float) -> dict:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=harness.KAFKA, group_id=harness.unique_name("naive"),
                                auto_offset_reset="earliest")
    client = AsyncMongoClient(harness.MONGO_URI, tz_aware=True)
    collection = client[database].prices
    for keys, name in PRICES_INDEXES:
        await collection.create_index(list(keys), name=name)
    await consumer.start()
    stored, started = 0, None
    try:
        async for message in consumer:
            if started is None:
                started = time.perf_counter()
            # The seed's loop: parse one message, insert it, go on to the next.
            await collection.insert_one(to_document(decode_tick(message.value), dt.datetime.now(UTC)))
            stored += 1
            if stored >= total or time.perf_counter() - started > time_cap:
                break
        seconds = time.perf_counter() - started
    finally:
        await consumer.stop()
        await client.close()
    return _capped_run(stored, seconds, stored >= total, time_cap)


def naive_consumer(client, topic: str, total: int, time_cap: float) -> dict:
    """(b) The seed's approach: an aiokafka consumer and one insert_one per message."""
    name = harness.unique_name("naive")
    try:
        return asyncio.run(_naive_consume(topic, name, total, time_cap))
    finally:
        client.drop_database(name)


def write_rate(stamps: list[dt.datetime]) -> tuple[float | None, float]:
    """(ticks/s, seconds) from the documents' inserted_at, stamped by the sink just before each batch's write.

    From the first batch's stamp to the last one's, every batch but the last was written: no start-up,
    no polling error, and nothing the bench did to the server is in the window.
    """
    first, last = min(stamps), max(stamps)
    seconds = (last - first).total_seconds()
    written = sum(1 for s in stamps if s < last)
    return (round(written / seconds, 1) if seconds > 0 else None), seconds


def project_sink(client, name: str, topic: str, total: int, time_cap: float, poll: float, profiler: Profiler,
                 candles: bool = True, env: Optional[dict[str, str]] = None) -> dict:
    """(a) The real `cryptoapp worker` (app id and database `name`) consuming the pre-filled topic; its source idles.
    `candles`: with the candles and views kept (as it runs), or the sink alone (CRYPTO_CANDLES=0); `env`: more
    settings of the worker (bench/forecasts.py: CRYPTO_FORECASTS)."""
    # A huge interval: the worker's timer polls once at start-up (one DOGE tick, told apart below), then never.
    worker = Worker(name, {"CRYPTO_TOPIC": topic, "MONGO_DB": name, "CRYPTO_SOURCE": "simulated",
                           "CRYPTO_INTERVAL": "1e9", "CRYPTO_SYMBOLS": "dogecoin",
                           "CRYPTO_CANDLES": "1" if candles else "0",
                           "CRYPTO_DATADIR": str(harness.ROOT / ".local" / "bench-faust"), **(env or {})})
    collection = client[name].prices
    # One profile per kind of run, not one over the other: sink-worker, sink-worker-candles-off, ...-crypto_forecasts-0
    label = "sink-worker" + ("" if candles else "-candles-off") + "".join(
        f"-{key.lower()}-{value}" for key, value in sorted((env or {}).items()))
    server = harness.mongo_server_process()
    server_cpu = harness.cpu_seconds(server)
    spawned = time.time()
    try:
        worker.start(wait_web=False)
        proc = psutil.Process(worker.proc.pid)
        profiler.attach(label, worker.proc.pid)
        # CPU per tick over the drain, once the first batch is in: the start-up's imports and joins are not the sink's.
        asyncio.run(harness.wait_committed(name, topic, 1, time_cap, 0.05, worker._alive))
        first, cpu_first = asyncio.run(harness.committed_count(name, topic)), harness.cpu_seconds(proc)
        completed = asyncio.run(harness.wait_committed(name, topic, total + 1, time_cap, poll, worker._alive))
        rss = harness.rss_mb(proc)
        worker_cpu = harness.cpu_seconds(proc)
        drained = total + 1 - first
        profiler.detach(label)
        worker.stop()
        server_cpu_used = None if server_cpu is None else round(harness.cpu_seconds(server) - server_cpu, 1)
        stamps = [d["inserted_at"] for d in collection.find({"sensor_id": {"$ne": "DOGE"}}, {"inserted_at": 1})]
    finally:
        profiler.detach(label)
        worker.stop()
        client.drop_database(name)
    if not stamps:
        return {"stored": 0, "completed": False, "ticks_per_s": 0.0, "time_cap_s": time_cap,
                "worker_rss_mb": rss, "log": str(worker.log_path)}
    rate, seconds = write_rate(stamps)
    return {"stored": len(stamps), "seconds": round(seconds, 2), "ticks_per_s": rate,
            "completed": completed and len(stamps) == total, "time_cap_s": time_cap,
            "startup_s": round(min(stamps).timestamp() - spawned, 2), "batches": len(set(stamps)),
            "worker_rss_mb": rss, "worker_cpu_s": worker_cpu and round(worker_cpu, 1),
            "cpu_us_per_tick": round((worker_cpu - cpu_first) * 1e6 / drained, 1) if completed and drained > 0 else None,
            "mongo_server_cpu_s": server_cpu_used, "log": str(worker.log_path)}


def run(quick: bool, profiler: Profiler) -> dict:
    total = 2_000 if quick else 100_000
    caps = {"sink": 15.0, "naive": 5.0, "store": 10.0} if quick else {"sink": 300.0, "naive": 300.0, "store": 300.0}
    topic, worker_name = harness.unique_name("sink-topic"), harness.unique_name("sink")
    bare_name = harness.unique_name("sink-bare")
    # Recent ticks: the candles take them (ticks older than CRYPTO_CANDLES_HOURS would be left out, and cost nothing).
    end = dt.datetime.now(UTC).replace(microsecond=0) - dt.timedelta(minutes=1)
    ticks = harness.simulated_ticks(total, end, dt.timedelta(seconds=1))
    client = harness.mongo()
    try:
        prefill_s = harness.prefilled_topic(topic, ticks)
        now = dt.datetime.now(UTC)
        docs = [to_document(t, now) for t in ticks]
        result = {
            "ticks": total, "topic_partitions": load().partitions, "prefill_s": round(prefill_s, 2),
            "raw_insert_many": raw_insert_many(client, docs),
            "store_without_kafka": store_without_kafka(client, ticks, caps["store"]),
            "naive_insert_one": naive_consumer(client, topic, total, caps["naive"]),
            "project_sink": project_sink(client, worker_name, topic, total, caps["sink"], 0.5, profiler),
            "project_sink_candles_off": project_sink(client, bare_name, topic, total, caps["sink"], 0.5, profiler,
                                                     candles=False),
        }
    finally:
        asyncio.run(harness.delete_topics_with_prefix(topic, worker_name, bare_name))
        client.close()
    sink, naive, ceiling = (result[k]["ticks_per_s"] for k in ("project_sink", "naive_insert_one", "raw_insert_many"))
    result["sink_vs_naive"] = round(sink / naive, 2) if naive else None
    result["sink_vs_ceiling"] = round(sink / ceiling, 3) if ceiling else None
    # The keys issue 13 names, beside the detail above.
    result.update(ticks_per_s=sink, naive_ticks_per_s=naive, raw_insert_many_ticks_per_s=ceiling)
    # Issue 21's keys: the worker's CPU seconds over the ticks it drained, as users run it and with CRYPTO_CANDLES=0.
    result["worker_cpu_us_per_tick"] = result["project_sink"].get("cpu_us_per_tick")
    result["worker_cpu_us_per_tick_bare"] = result["project_sink_candles_off"].get("cpu_us_per_tick")
    bare = result["project_sink_candles_off"]["ticks_per_s"]
    result["candles_sink_ratio"] = round(sink / bare, 2) if bare else None
    return result
