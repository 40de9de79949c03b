"""Loads the Spark jobs' Parquet results into MongoDB (analytics_daily, analytics_correlation, analytics_runs), idempotently.

Each collection is made to hold exactly the last run's results, matched by deterministic `_id`s
(BTC_2025-11-21, daily_BTC_ETH): loading the same results twice changes nothing, and a day or pair a
later run no longer has is removed. Only documents whose numbers changed are rewritten.
"""

from __future__ import annotations

import datetime as dt
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Protocol

import pyarrow as pa
import pyarrow.parquet as pq

from cryptoapp.schema import (ANALYTICS_CORRELATION, ANALYTICS_DAILY, UTC, analytics_correlation_id,
                              analytics_daily_id, is_finite_number, iso_z)

# The jobs' output folders under the results root (cryptoapp/analytics/jobs/common.py names them too:
# those scripts run under spark-submit without this package).
DAILY_DIR, CORRELATION_DIR, RUN_DIR = "daily", "correlation", "run"
DAILY_NUMBERS = ("open", "high", "low", "close", "return", "volatility", "volatility_annualized", "max_drawdown",
                 "coverage")
DAILY_COUNTS = ("ticks", "minutes", "returns_1m")
# Spark sums in whatever order its partitions finish: a recomputed, unchanged day may differ in the last bits.
RELATIVE_TOLERANCE = 1e-9


class ResultsMissing(Exception):
    """The results folder lacks a job's output; the message says which and how to make it."""


class ResultWriter(Protocol):
    """What the loader needs from MongoDB (cryptoapp.storage's analytics family, PriceStore.analytics, has it)."""

    async def sync_results(self, collection: str, docs: list[dict], same: Any = ...) -> tuple[int, int, int]: ...

    async def record_analytics_run(self, run: dict) -> None: ...


def _float(value: object) -> Optional[float]:
    return float(value) if is_finite_number(value) else None


def _utc(value: object) -> Optional[dt.datetime]:
    if not isinstance(value, dt.datetime):
        return None
    value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return value.replace(microsecond=value.microsecond // 1000 * 1000)  # what BSON keeps


def daily_documents(table: pa.Table) -> list[dict]:
    """analytics_daily documents from the daily job's rows: `_id` BTC_2025-11-21, `date` as YYYY-MM-DD."""
    docs = []
    for row in table.to_pylist():
        docs.append({
            "_id": analytics_daily_id(row["coin"], row["date"]),
            "sensor_id": row["coin"],
            "date": row["date"].isoformat(),
            **{name: _float(row.get(name)) for name in DAILY_NUMBERS},
            **{name: int(row[name]) if row.get(name) is not None else None for name in DAILY_COUNTS},
            "first_tick": _utc(row.get("first_tick")),
            "last_tick": _utc(row.get("last_tick")),
            "sources": list(row.get("sources") or []),
        })
    return docs


def correlation_documents(table: pa.Table) -> list[dict]:
    """analytics_correlation documents: one per frequency and pair (coin_a <= coin_b), `_id` daily_BTC_ETH."""
    return [{
        "_id": analytics_correlation_id(row["frequency"], row["coin_a"], row["coin_b"]),
        "frequency": row["frequency"],
        "coin_a": row["coin_a"],
        "coin_b": row["coin_b"],
        "correlation": _float(row.get("correlation")),
        "observations": int(row["observations"]),
        "start": row["start"].isoformat(),
        "end": row["end"].isoformat(),
    } for row in table.to_pylist()]


def run_document(table: Optional[pa.Table], loaded_at: dt.datetime) -> dict:
    """The analytics_runs record: the jobs' own summary (when computed, over what, on which master) plus the load time."""
    row = table.to_pylist()[0] if table is not None and table.num_rows else {}
    computed = _utc(row.get("computed_at")) or _utc(loaded_at)
    day = lambda name: row[name].isoformat() if row.get(name) else None  # noqa: E731
    return {
        "_id": iso_z(computed),
        "computed_at": computed,
        "loaded_at": _utc(loaded_at),
        "ticks": row.get("ticks"),
        "coins": row.get("coins") or [],
        "days": row.get("days"),
        "first_day": day("first_day"), "last_day": day("last_day"),
        "span_start": day("span_start"), "span_end": day("span_end"),
        "master": row.get("master"),
        "spark_version": row.get("spark_version"),
        "jobs_s": row.get("seconds"),
    }


def same_result(stored: dict, fresh: dict) -> bool:
    """Equal documents, floats compared to RELATIVE_TOLERANCE."""
    if stored.keys() != fresh.keys():
        return False
    for key, value in fresh.items():
        old = stored[key]
        if isinstance(value, float) and isinstance(old, float):
            if not math.isclose(old, value, rel_tol=RELATIVE_TOLERANCE):
                return False
        elif old != value:
            return False
    return True


def read_results(results: Path, name: str, required: bool = True) -> Optional[pa.Table]:
    path = Path(results) / name
    if not path.is_dir():
        if not required:
            return None
        raise ResultsMissing(f"no {name} results in {path}: run the Spark jobs first (make analytics)")
    return pq.read_table(path)


@dataclass
class LoadReport:
    daily: tuple[int, int, int] = (0, 0, 0)  # (inserted, replaced, deleted)
    correlation: tuple[int, int, int] = (0, 0, 0)
    run: dict = field(default_factory=dict)
    seconds: float = 0.0


async def load_results(store: ResultWriter, results: Path, now: Optional[dt.datetime] = None) -> LoadReport:
    """Writes the results under `results` into MongoDB; raises ResultsMissing when a job's output is absent."""
    started = time.perf_counter()
    daily = daily_documents(read_results(results, DAILY_DIR))
    correlation = correlation_documents(read_results(results, CORRELATION_DIR))
    report = LoadReport()
    report.daily = await store.sync_results(ANALYTICS_DAILY, daily, same_result)
    report.correlation = await store.sync_results(ANALYTICS_CORRELATION, correlation, same_result)
    # Written last: the dashboard shows this run's time only once its results are all in place.
    report.run = run_document(read_results(results, RUN_DIR, required=False), now or dt.datetime.now(UTC))
    await store.record_analytics_run(report.run)
    report.seconds = time.perf_counter() - started
    return report
