"""`cryptoapp export parquet` (the archive as Parquet) and `cryptoapp analytics load` (Spark's results into MongoDB)."""

from __future__ import annotations

import contextlib
import datetime as dt
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Optional

import click
from faust.cli import AppCommand, argument, option

from cryptoapp.analytics.export import READ_TIMEOUT_S, export_parquet
from cryptoapp.analytics.load import ResultsMissing, load_results
from cryptoapp.app import app

from cryptoapp.storage import PriceStore, StorageError

DEFAULT_EXPORT_DIR = Path(".local/analytics/parquet")
DEFAULT_RESULTS_DIR = Path(".local/analytics/results")


class UserError(Exception):
    """Bad input or an unusable service or folder: one line for the user, exit status 1."""


def parse_day(text: Optional[str]) -> Optional[dt.date]:
    if text is None:
        return None
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise UserError(f"--since {text!r} is not a date: write it as YYYY-MM-DD, e.g. 2025-11-21") from None


def _fail(command: AppCommand, name: str, exc: Exception) -> None:
    command.say(f"cryptoapp {name}: {exc}", file=sys.stderr)
    raise SystemExit(1)


@contextlib.contextmanager
def _said_in_one_line(command: AppCommand, name: str, errors: tuple[type[Exception], ...],
                      os_error: Callable[[OSError], str]) -> Iterator[None]:
    """`errors` (their message) and an OSError (`os_error` says it) end the command with one line and status 1."""
    try:
        yield
    except errors as exc:
        _fail(command, name, exc)
    except OSError as exc:
        _fail(command, name, os_error(exc))


@app.command(
    argument("what", type=click.Choice(["parquet"])),
    option("--since", default=None, help="Only days from this UTC date on, YYYY-MM-DD (default: every stored day)."),
    option("--out", default=str(DEFAULT_EXPORT_DIR), show_default=True,
           help="Export root; ticks go to OUT/prices/coin=<TICKER>/date=<YYYY-MM-DD>/ticks.parquet."),
    option("--rewrite", is_flag=True, default=False, help="Write every day again, changed or not."),
)
async def export(self: AppCommand, what: str, since: Optional[str], out: str, rewrite: bool) -> None:
    """Export the stored ticks as Parquet: new days, today, and days whose tick count changed."""
    with _said_in_one_line(self, "export parquet", (UserError, StorageError),
                           lambda exc: f"cannot write to {out}: {exc.strerror or exc}; choose another --out"):
        day = parse_day(since)
        async with PriceStore(app.settings.mongo_uri, app.settings.mongo_db, socket_timeout_s=READ_TIMEOUT_S) as store:
            report = await export_parquet(store.analytics, Path(out), since=day, rewrite=rewrite)
    days = len(report.written)
    self.say(f"export parquet: {days} day{'s' * (days != 1)} written ({report.ticks:,} ticks), "
             f"{report.skipped} unchanged, in {report.seconds:.1f} s -> {report.out}")
    if report.ignored:
        self.say(f"export parquet: left out stored sensor_ids that are not tickers: {', '.join(report.ignored)}",
                 file=sys.stderr)


@app.command(
    argument("action", type=click.Choice(["load"])),
    option("--results", default=str(DEFAULT_RESULTS_DIR), show_default=True,
           help="The Spark jobs' --out folder (holding daily/, correlation/, run/)."),
)
async def analytics(self: AppCommand, action: str, results: str) -> None:
    """Load the Spark jobs' results into MongoDB (analytics_daily, analytics_correlation, analytics_runs)."""
    with _said_in_one_line(self, "analytics load", (ResultsMissing, StorageError),
                           lambda exc: f"cannot read {results}: {exc.strerror or exc}"):
        async with PriceStore(app.settings.mongo_uri, app.settings.mongo_db) as store:
            report = await load_results(store.analytics, Path(results))
    (d_new, d_changed, d_gone), (c_new, c_changed, c_gone) = report.daily, report.correlation
    self.say(f"analytics load: daily {d_new} new, {d_changed} changed, {d_gone} removed; correlation {c_new} new, "
             f"{c_changed} changed, {c_gone} removed; run {report.run['_id']} in {report.seconds:.1f} s "
             f"({store.where})")
