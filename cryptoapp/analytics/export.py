"""The archive (`crypto.prices`) as Parquet for the Spark jobs: one file per coin and UTC day, rewritten whole when it changed.

Layout (hive style, so Spark and pyarrow.dataset read `coin` and `date` from the path):

    <out>/prices/coin=BTC/date=2025-11-21/ticks.parquet

Schema of ticks.parquet (TICKS_SCHEMA; docs/analytics.md): `timestamp` timestamp[ms, tz=UTC] (the source's
time, as stored), `value` and the other prices float64, `currency`, `source`, `granularity` and `tick_id`
(the MongoDB `_id`) as strings, `inserted_at` timestamp[ms, tz=UTC]. A field a tick does not have is null,
never a made-up value; the coin and the day are the partition, not columns of the file.

Which days are written (days_to_export): a day not exported yet, today (UTC; still growing), and a day
whose stored tick count differs from the row count in its exported file's footer. The footer is the only
record of what was exported, so a partition deleted by hand or lost in a crash is simply exported again.
A day is written to a hidden temporary directory and renamed into place, so a re-run replaces a day
whole and a reader never sees half a day or the same tick twice.

Reading: when nothing of the range is exported yet (or with rewrite), one pass over it; otherwise one
count pass (the store's analytics.tick_days), then one pass over the chosen days' time range. Each pass takes all
coins at once, in the server's order; the chosen days are held as Arrow tables (~125 bytes a tick) until
the pass ends, then sorted by time and written. A first export of a very large archive can be made in
slices, newest first, with --since (memory holds only the days being written).
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, Optional, Protocol

import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from cryptoapp.schema import TICKER_RE, UTC, is_finite_number

# The export's MongoDB client waits this long for one answer (PriceStore's socket_timeout_s): on FerretDB a
# read of the last day scans the whole archive before its first document (minutes for millions of ticks).
READ_TIMEOUT_S = 1800.0
PRICES_DIR = "prices"  # the ticks' dataset under the export root (candles may sit beside it later)
FILE_NAME = "ticks.parquet"
DAY = dt.timedelta(days=1)
_MS = pa.timestamp("ms", tz="UTC")
TICKS_SCHEMA = pa.schema([
    pa.field("timestamp", _MS, nullable=False),
    pa.field("value", pa.float64()),
    pa.field("bid_price", pa.float64()),
    pa.field("ask_price", pa.float64()),
    pa.field("volume_24h", pa.float64()),
    pa.field("change_24h_pct", pa.float64()),
    pa.field("market_cap", pa.float64()),
    pa.field("currency", pa.string()),
    pa.field("source", pa.string()),
    pa.field("granularity", pa.string()),
    pa.field("inserted_at", _MS),
    pa.field("tick_id", pa.string(), nullable=False),
])
_NUMBERS = [f.name for f in TICKS_SCHEMA if f.type == pa.float64()]
_TEXTS = ("currency", "source", "granularity")

Partition = tuple[str, dt.date]  # (ticker, UTC day)


class TickReader(Protocol):
    """What the export needs from the archive (cryptoapp.storage's analytics family, PriceStore.analytics, has it)."""

    async def tick_days(self, since: Optional[dt.datetime] = None) -> dict[Partition, int]: ...

    def iter_ticks(self, ticker: Optional[str], start: Optional[dt.datetime] = None,
                   end: Optional[dt.datetime] = None): ...


# --- pure logic -------------------------------------------------------------------------------------------

def day_start(day: dt.date) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, tzinfo=UTC)


def partition_path(root: Path, ticker: str, day: dt.date) -> Path:
    """<root>/prices/coin=BTC/date=2025-11-21 (the ticker is checked: it becomes a directory name)."""
    if not TICKER_RE.fullmatch(ticker):
        raise ValueError(f"{ticker!r} is not a ticker")
    return Path(root) / PRICES_DIR / f"coin={ticker}" / f"date={day.isoformat()}"


def _number(value: object) -> Optional[float]:
    """A stored number as float64; anything else (null, text, NaN) is null: nothing is made up."""
    if not is_finite_number(value):
        return None
    return float(value)


def _text(value: object) -> Optional[str]:
    return value if isinstance(value, str) else None


def _time(value: object) -> Optional[dt.datetime]:
    return value.astimezone(UTC) if isinstance(value, dt.datetime) and value.tzinfo is not None else None


def ticks_table(docs: Iterable[dict]) -> pa.Table:
    """Stored tick documents as a table of TICKS_SCHEMA, in the order given."""
    docs = list(docs)
    columns = {
        "timestamp": [_time(d.get("timestamp")) for d in docs],
        **{name: [_number(d.get(name)) for d in docs] for name in _NUMBERS},
        **{name: [_text(d.get(name)) for d in docs] for name in _TEXTS},
        "inserted_at": [_time(d.get("inserted_at")) for d in docs],
        "tick_id": [str(d.get("_id")) for d in docs],
    }
    return pa.Table.from_pydict(columns, schema=TICKS_SCHEMA)


def days_to_export(stored: dict[Partition, int], exported: dict[Partition, int], today: dt.date,
                   since: Optional[dt.date] = None, rewrite: bool = False) -> list[Partition]:
    """The (ticker, day) partitions to write, sorted: new ones, today's, and those whose tick count changed.

    `stored` is the archive's tick count per partition, `exported` the row count of each exported file;
    `since` leaves out earlier days; `rewrite` takes every stored day again.
    """
    chosen = [key for key, count in stored.items()
              if count > 0 and (since is None or key[1] >= since)
              and (rewrite or key[1] >= today or exported.get(key) != count)]
    return sorted(chosen)


class DayBuffers:
    """Collects the chosen days' ticks from a stream in any order, compactly: whenever FLUSH_ROWS documents
    are pending, they become Arrow tables (~125 bytes a tick instead of a Python dict's ~1 KB)."""

    FLUSH_ROWS = 50_000

    def __init__(self, chosen: Optional[Iterable[Partition]]):
        """`chosen` None takes every day of every ticker (the stored sensor_ids that are not go to `ignored`)."""
        self.chosen = None if chosen is None else set(chosen)
        self.ignored: set[str] = set()
        self._rows: dict[Partition, list[dict]] = {}
        self._tables: dict[Partition, list[pa.Table]] = {}
        self._pending = 0

    def add(self, doc: dict) -> bool:
        """Keeps `doc` if its (ticker, UTC day) is chosen; tells whether it did."""
        ts, ticker = doc.get("timestamp"), doc.get("sensor_id")
        if not isinstance(ts, dt.datetime):
            return False
        key = (ticker, ts.astimezone(UTC).date())
        if self.chosen is None:
            if not isinstance(ticker, str) or not TICKER_RE.fullmatch(ticker):
                self.ignored.add(str(ticker))
                return False
        elif key not in self.chosen:
            return False
        self._rows.setdefault(key, []).append(doc)
        self._pending += 1
        if self._pending >= self.FLUSH_ROWS:
            self._flush()
        return True

    def _flush(self) -> None:
        # Days arrive interleaved (five coins a minute): flushing by total, not per day, bounds the dicts held.
        for key, rows in self._rows.items():
            self._tables.setdefault(key, []).append(ticks_table(rows))
        self._rows.clear()
        self._pending = 0

    def days(self) -> Iterator[tuple[Partition, pa.Table]]:
        """Each collected day as one table in time order (ties by tick id), emptied as it goes."""
        for key in sorted(set(self._rows) | set(self._tables)):
            parts = self._tables.pop(key, [])
            rows = self._rows.pop(key, [])
            if rows:
                parts.append(ticks_table(rows))
            yield key, pa.concat_tables(parts).sort_by([("timestamp", "ascending"), ("tick_id", "ascending")])


# --- files ------------------------------------------------------------------------------------------------

def exported_days(root: Path) -> dict[Partition, int]:
    """Row count of every exported (ticker, day), read from the Parquet footers (no data is read)."""
    found: dict[Partition, int] = {}
    base = Path(root) / PRICES_DIR
    for path in base.glob(f"coin=*/date=*/{FILE_NAME}"):
        ticker, day = path.parent.parent.name[5:], path.parent.name[5:]
        try:
            found[(ticker, dt.date.fromisoformat(day))] = pq.read_metadata(path).num_rows
        except (ValueError, OSError, pa.ArrowException):
            continue  # not a day this export wrote, or a damaged file: exported again
    return found


def write_day(root: Path, ticker: str, day: dt.date, table: pa.Table) -> Path:
    """Writes one day whole: into a hidden temporary directory, then renamed over the old one.

    Spark and pyarrow skip names starting with '.', so neither the temporary nor the replaced
    directory is ever read as data.
    """
    final = partition_path(root, ticker, day)
    final.parent.mkdir(parents=True, exist_ok=True)
    token = uuid.uuid4().hex[:8]
    staging = final.parent / f".{final.name}.tmp-{token}"
    staging.mkdir()
    try:
        pq.write_table(table, staging / FILE_NAME, compression="zstd")
        if final.exists():
            old = final.parent / f".{final.name}.old-{token}"
            os.rename(final, old)
            os.rename(staging, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(staging, final)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return final


def remove_leftovers(root: Path) -> int:
    """Deletes temporary directories an interrupted export left behind; returns how many."""
    leftovers = [p for p in (Path(root) / PRICES_DIR).glob("coin=*/.date=*") if p.is_dir()]
    for path in leftovers:
        shutil.rmtree(path, ignore_errors=True)
    return len(leftovers)


# --- the export -------------------------------------------------------------------------------------------

@dataclass
class ExportReport:
    out: Path
    written: list[Partition] = field(default_factory=list)
    ticks: int = 0
    skipped: int = 0  # exported days that had not changed
    ignored: list[str] = field(default_factory=list)  # stored sensor_ids that are not tickers
    seconds: float = 0.0


async def export_parquet(store: TickReader, out: Path, since: Optional[dt.date] = None,
                         now: Optional[dt.datetime] = None, rewrite: bool = False,
                         progress: Optional[bool] = None) -> ExportReport:
    """Exports the days days_to_export() picks; `progress` None shows the bar only on a terminal."""
    started = time.perf_counter()
    out = Path(out)
    report = ExportReport(out=out)
    remove_leftovers(out)
    exported = exported_days(out)
    if rewrite or not any(since is None or day >= since for _, day in exported):
        # Nothing of the range exported yet (or all to be written again): every stored day goes, so a single
        # pass reads them and no count pass is needed (on FerretDB each pass is a whole-collection scan).
        buffers, total = DayBuffers(None), None
        reading = store.iter_ticks(None, day_start(since) if since else None)
    else:
        today = (now or dt.datetime.now(UTC)).astimezone(UTC).date()
        stored = await store.tick_days(day_start(since) if since else None)
        report.ignored = sorted({t for t, _ in stored if not TICKER_RE.fullmatch(t)})
        stored = {key: n for key, n in stored.items() if TICKER_RE.fullmatch(key[0])}
        chosen = days_to_export(stored, exported, today, since, rewrite)
        report.skipped = sum(1 for key in stored if (since is None or key[1] >= since)) - len(chosen)
        if not chosen:
            report.seconds = time.perf_counter() - started
            return report
        # One pass over the chosen days' time range, every coin at once: a query costs a whole-collection scan
        # on FerretDB, so one per coin or per day would multiply the cost; MongoDB serves the range from its index.
        buffers, total = DayBuffers(chosen), sum(stored[key] for key in chosen)
        first, last = min(day for _, day in chosen), max(day for _, day in chosen)
        tickers = {ticker for ticker, _ in chosen}
        reading = store.iter_ticks(tickers.pop() if len(tickers) == 1 else None, day_start(first),
                                   day_start(last) + DAY)
    bar = tqdm(total=total, unit=" ticks", unit_scale=True, desc="export parquet",
               disable=None if progress is None else not progress)
    try:
        async for doc in reading:
            if buffers.add(doc):
                bar.update(1)
    finally:
        bar.close()
    if buffers.ignored:
        report.ignored = sorted(buffers.ignored)
    for (ticker, day), table in buffers.days():
        write_day(out, ticker, day, table)
        report.written.append((ticker, day))
        report.ticks += table.num_rows
    report.seconds = time.perf_counter() - started
    return report
