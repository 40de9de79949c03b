"""Requires MongoDB: `cryptoapp export parquet` is incremental and idempotent against a real archive."""

import datetime as dt
import os
import subprocess

import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
from pymongo import MongoClient

from cryptoapp.analytics.export import TICKS_SCHEMA, export_parquet, partition_path
from cryptoapp.prices.models import PriceTick
from cryptoapp.storage import PriceStore
from cryptoapp.storage.ticks import to_document
from testkit.processes import ROOT

pytestmark = pytest.mark.integration
UTC = dt.timezone.utc
DAYS = [dt.date(2025, 11, 19), dt.date(2025, 11, 20), dt.date(2025, 11, 21)]
TODAY = DAYS[-1]
NOW = dt.datetime(2025, 11, 21, 18, tzinfo=UTC)


def tick(coin: str, when: dt.datetime, value: float, **extra) -> dict:
    return to_document(PriceTick(ticker=coin, timestamp=when, value=value, source="coingecko", **extra), NOW)


@pytest.fixture
def archive(services, unique_name):
    """A database with BTC and ETH ticks every hour of three days (the last one 'today'), dropped afterwards."""
    client = MongoClient(services["mongo_uri"], tz_aware=True)
    docs = [tick(coin, dt.datetime(d.year, d.month, d.day, h, tzinfo=UTC), 100.0 + h,
                 bid_price=99.0 + h if coin == "BTC" else None)
            for coin in ("BTC", "ETH") for d in DAYS for h in range(24)]
    client[unique_name].prices.insert_many(docs)
    yield client[unique_name], unique_name
    client.drop_database(unique_name)
    client.close()


async def export(database: str, out, **kwargs):
    async with PriceStore(os.environ.get("MONGO_URI", "mongodb://localhost:27017"), database) as store:
        return await export_parquet(store.analytics, out, now=NOW, progress=False, **kwargs)


@pytest.fixture
async def exported(archive, tmp_path):
    """The archive after a first export to tmp_path: (its database, its name)."""
    await export(archive[1], tmp_path)
    return archive


def files(out) -> dict:
    """Each exported file -> (inode, modification time): a rewritten day gets a new file."""
    return {p.relative_to(out).as_posix(): (p.stat().st_ino, p.stat().st_mtime_ns) for p in out.rglob("*.parquet")}


def rows(out) -> int:
    return ds.dataset(out / "prices", partitioning="hive").count_rows()


async def test_a_rerun_rewrites_only_today_and_duplicates_nothing(archive, tmp_path):
    db, name = archive
    first = await export(name, tmp_path)
    assert len(first.written) == 6 and first.ticks == 144 and rows(tmp_path) == 144
    before = files(tmp_path)
    today_table = pq.read_table(partition_path(tmp_path, "BTC", TODAY))

    again = await export(name, tmp_path)

    assert sorted(again.written) == [("BTC", TODAY), ("ETH", TODAY)] and again.skipped == 4
    after = files(tmp_path)
    assert after.keys() == before.keys() and rows(tmp_path) == 144
    changed = {path for path in after if after[path] != before[path]}
    assert changed == {f"prices/coin={c}/date={TODAY}/ticks.parquet" for c in ("BTC", "ETH")}
    assert pq.read_table(partition_path(tmp_path, "BTC", TODAY)).equals(today_table)
    assert not [p for p in tmp_path.rglob(".*")]  # no temporary or replaced directory left behind


async def test_a_day_whose_tick_count_changed_is_exported_again_whole(exported, tmp_path):
    db, name = exported
    db.prices.insert_one(tick("BTC", dt.datetime(2025, 11, 19, 12, 30, tzinfo=UTC), 150.0))
    report = await export(name, tmp_path)
    assert sorted(report.written) == [("BTC", DAYS[0]), ("BTC", TODAY), ("ETH", TODAY)]
    assert pq.read_metadata(partition_path(tmp_path, "BTC", DAYS[0]) / "ticks.parquet").num_rows == 25
    assert rows(tmp_path) == 145


async def test_a_lost_partition_is_exported_again_and_since_limits_the_days(exported, tmp_path):
    _, name = exported
    lost = partition_path(tmp_path, "ETH", DAYS[1])
    for f in lost.iterdir():
        f.unlink()
    lost.rmdir()
    report = await export(name, tmp_path, since=DAYS[1])
    assert sorted(report.written) == [("BTC", TODAY), ("ETH", DAYS[1]), ("ETH", TODAY)]
    assert rows(tmp_path) == 144


async def test_the_schema_keeps_utc_milliseconds_float64_and_nulls(exported, tmp_path):
    table = pq.read_table(partition_path(tmp_path, "ETH", DAYS[0]) / "ticks.parquet")
    assert table.schema.equals(TICKS_SCHEMA, check_metadata=False)
    assert str(table.schema.field("timestamp").type) == "timestamp[ms, tz=UTC]"
    assert table.column("bid_price").null_count == 24  # ETH ticks have no bid: null, not 0
    first = table.slice(0, 1).to_pylist()[0]
    assert first["timestamp"] == dt.datetime(2025, 11, 19, tzinfo=UTC) and first["value"] == 100.0
    assert first["tick_id"] == "ETH_2025-11-19T00:00:00Z"


def test_the_command_exports_and_says_what_it_did_and_rejects_a_bad_date(archive, tmp_path):
    _, name = archive
    cli = [str(ROOT / ".venv" / "bin" / "cryptoapp"), "export", "parquet", "--out", str(tmp_path)]
    env = {**os.environ, "MONGO_DB": name}
    done = subprocess.run(cli, env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "export parquet: 6 days written (144 ticks), 0 unchanged" in done.stdout
    bad = subprocess.run([*cli, "--since", "21.11.2025"], env=env, cwd=ROOT, capture_output=True, text=True,
                         timeout=120)
    assert bad.returncode == 1
    assert bad.stderr.strip() == ("cryptoapp export parquet: --since '21.11.2025' is not a date: write it as "
                                  "YYYY-MM-DD, e.g. 2025-11-21")
