"""Reading a Kafka topic end to end from synchronous tests (the drill's reader, on an event loop of its own)."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

from bench.chaos import read_topic


def records(bootstrap: str, topic: str) -> list:
    """Every record of `topic`, all partitions, up to its end offsets now."""
    with ThreadPoolExecutor(1) as pool:  # a thread of its own: the test session may have a loop running
        return pool.submit(asyncio.run, read_topic(bootstrap, topic)).result()
