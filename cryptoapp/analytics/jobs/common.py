"""What the Spark jobs share: the session, the exported ticks' schema, how they are read, the command-line options.

This folder is plain PySpark scripts for `spark-submit` (no package, so the worker's Faust autodiscovery
never imports Spark). The scripts import this file as a sibling module; on a cluster in cluster deploy
mode ship it with `--py-files cryptoapp/analytics/jobs/common.py,...` (the Makefile always does).
The jobs use the DataFrame API only, no Python UDFs: executors need no Python code of ours.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
from collections.abc import Iterator

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

MINUTES_PER_DAY = 1440
# Crypto trades every day of the year: a daily volatility times sqrt(365) is the annualized one.
DAYS_PER_YEAR = 365
PRICES_DIR = "prices"  # cryptoapp.analytics.export.PRICES_DIR: the ticks' dataset under the export root
DAILY_DIR = "daily"
CORRELATION_DIR = "correlation"
RUN_DIR = "run"
DEFAULT_CORRELATION_DAYS = 90

# cryptoapp.analytics.export.TICKS_SCHEMA as Spark reads it, plus the hive partition columns. Given
# explicitly so a ticker made of digits stays a string and `date` is a date, whatever the paths hold.
TICKS = T.StructType([
    T.StructField("timestamp", T.TimestampType(), False),
    T.StructField("value", T.DoubleType()),
    T.StructField("bid_price", T.DoubleType()),
    T.StructField("ask_price", T.DoubleType()),
    T.StructField("volume_24h", T.DoubleType()),
    T.StructField("change_24h_pct", T.DoubleType()),
    T.StructField("market_cap", T.DoubleType()),
    T.StructField("currency", T.StringType()),
    T.StructField("source", T.StringType()),
    T.StructField("granularity", T.StringType()),
    T.StructField("inserted_at", T.TimestampType()),
    T.StructField("tick_id", T.StringType(), False),
    T.StructField("coin", T.StringType(), False),
    T.StructField("date", T.DateType(), False),
])


def session(app_name: str) -> SparkSession:
    """The session spark-submit configured (master, memory, ...); fixed here only what the results depend on:
    days are UTC days, and result timestamps are standard Parquet (UTC-adjusted microseconds, not INT96)."""
    spark = SparkSession.builder.appName(app_name).config("spark.sql.session.timeZone", "UTC") \
        .config("spark.sql.parquet.outputTimestampType", "TIMESTAMP_MICROS").getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    return spark


def read_ticks(spark: SparkSession, export_root: str) -> DataFrame:
    """The exported ticks with a price: `coin`, `date` (UTC day), `timestamp`, `value`, `tick_id`, `source`."""
    ticks = spark.read.schema(TICKS).option("basePath", f"{export_root}/{PRICES_DIR}").parquet(
        f"{export_root}/{PRICES_DIR}")
    # A tick without a usable price says nothing about the price: left out, never filled in.
    return ticks.where(F.col("value").isNotNull() & (F.col("value") > 0)) \
        .select("coin", "date", "timestamp", "value", "tick_id", "source")


def nan_to_null(column: str):
    """Spark's corr gives NaN for a constant series; the results say null (undefined) instead."""
    return F.when(F.isnan(F.col(column)), F.lit(None)).otherwise(F.col(column))


def parser(description: str) -> argparse.ArgumentParser:
    args = argparse.ArgumentParser(description=description)
    args.add_argument("--in", dest="source", required=True,
                      help="the export root (`cryptoapp export parquet --out`), holding prices/coin=*/date=*/")
    args.add_argument("--out", required=True, help="where the results go (Parquet, overwritten)")
    return args


@contextlib.contextmanager
def job(doc: str, app_name: str, *, spans: bool = False) -> Iterator[tuple[argparse.Namespace, SparkSession]]:
    """`with job(__doc__, name) as (args, spark):` a script's options (with the correlation span's when `spans`)
    and its Spark session, stopped when the block ends."""
    options = parser(doc.splitlines()[0])
    if spans:
        add_span_options(options)
    args = options.parse_args()
    spark = session(app_name)
    try:
        yield args, spark
    finally:
        spark.stop()


def add_span_options(args: argparse.ArgumentParser) -> None:
    args.add_argument("--days", type=int, default=DEFAULT_CORRELATION_DAYS,
                      help=f"correlation span: the last N days with data (default {DEFAULT_CORRELATION_DAYS})")
    args.add_argument("--end", type=dt.date.fromisoformat, default=None,
                      help="the span's last day, YYYY-MM-DD (default: the last day with data)")
