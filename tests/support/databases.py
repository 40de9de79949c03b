"""Databases of a test's own on the real MongoDB server, dropped when the test is done with them."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from pymongo import MongoClient
from pymongo.database import Database


@contextlib.contextmanager
def dropped_after(mongo_uri: str, name: str) -> Iterator[Database]:
    """Database `name` on the server at `mongo_uri`, dropped when the block ends."""
    client = MongoClient(mongo_uri, tz_aware=True, serverSelectionTimeoutMS=5000)
    try:
        yield client[name]
    finally:
        client.drop_database(name)
        client.close()
