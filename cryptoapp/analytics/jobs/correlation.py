"""Spark job: the correlation matrix of the coins' daily and hourly returns over a span of days.

    spark-submit --master local[*] cryptoapp/analytics/jobs/correlation.py --in .local/analytics/parquet --out .local/analytics/results [--days 90] [--end YYYY-MM-DD]

Returns: daily = the daily job's `return` (close / previous day's close - 1); hourly = an hour's close /
the previous hour's close - 1, only between adjacent hours that both hold a tick. The span is the `--days`
UTC days ending with `--end` (default: the last day with data). Each pair's Pearson correlation is taken over
the periods where both coins have a return (pairwise), with that count as `observations`; a coin whose
returns do not vary (or fewer than 2 shared periods) has a null correlation, never a made-up one.
"""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling modules when run from a checkout

from pyspark.sql import DataFrame  # noqa: E402
from pyspark.sql import functions as F  # noqa: E402
from pyspark.sql.window import Window  # noqa: E402

from common import CORRELATION_DIR, job, nan_to_null, read_ticks  # noqa: E402
from daily import daily_stats, tick_order  # noqa: E402

COLUMNS = ("frequency", "coin_a", "coin_b", "correlation", "observations", "start", "end")


def hourly_returns(ticks: DataFrame) -> DataFrame:
    """coin, period (the hour's start), r: the hour's close over the previous hour's close, minus 1."""
    hours = ticks.withColumn("period", F.date_trunc("hour", "timestamp")) \
        .groupBy("coin", "period").agg(F.max_by("value", tick_order()).alias("close"))
    before = Window.partitionBy("coin").orderBy("period")
    adjacent = F.unix_seconds("period") - F.unix_seconds(F.lag("period").over(before)) == 3600
    return hours.withColumn("r", F.when(adjacent, F.col("close") / F.lag("close").over(before) - 1)) \
        .where(F.col("r").isNotNull()).select("coin", "period", "r")


def daily_returns(daily: DataFrame) -> DataFrame:
    return daily.where(F.col("return").isNotNull()) \
        .select("coin", F.col("date").alias("period"), F.col("return").alias("r"))


def correlations(returns: DataFrame, frequency: str, start: dt.date, end: dt.date) -> DataFrame:
    """Every pair (coin_a <= coin_b, the diagonal included) with its correlation over [start, end]."""
    inside = returns.where(F.to_date("period").between(F.lit(start), F.lit(end)))
    a = inside.select(F.col("coin").alias("coin_a"), "period", F.col("r").alias("r_a"))
    b = inside.select(F.col("coin").alias("coin_b"), "period", F.col("r").alias("r_b"))
    return a.join(b, "period").where(F.col("coin_a") <= F.col("coin_b")) \
        .groupBy("coin_a", "coin_b").agg(F.corr("r_a", "r_b").alias("correlation"),
                                         F.count(F.lit(1)).alias("observations")) \
        .withColumn("correlation", nan_to_null("correlation")) \
        .withColumn("frequency", F.lit(frequency)) \
        .withColumn("start", F.lit(start)).withColumn("end", F.lit(end)) \
        .select(*COLUMNS)


def span(daily: DataFrame, days: int, end: dt.date | None) -> tuple[dt.date, dt.date] | None:
    """(first, last) day of the span; None when there is no data."""
    if days < 1:
        raise SystemExit(f"--days {days}: give at least 1 day")
    first, last = daily.agg(F.min("date"), F.max("date")).first()
    last = end or last
    if last is None:
        return None
    # The span says what it covers: never earlier than the first day with data.
    return max(last - dt.timedelta(days=days - 1), first or last), last


def correlation_matrix(ticks: DataFrame, daily: DataFrame, days: int, end: dt.date | None):
    """(rows of both frequencies, the span) for the `days` days ending `end`."""
    bounds = span(daily, days, end)
    if bounds is None:
        return None, None
    start, last = bounds
    rows = correlations(daily_returns(daily), "daily", start, last) \
        .unionByName(correlations(hourly_returns(ticks), "hourly", start, last))
    return rows, bounds


def write_correlation(rows: DataFrame, results: str) -> None:
    rows.repartition(1).sortWithinPartitions("frequency", "coin_a", "coin_b") \
        .write.mode("overwrite").parquet(f"{results}/{CORRELATION_DIR}")


def main() -> None:
    with job(__doc__, "cryptoapp-analytics-correlation", spans=True) as (args, spark):
        ticks = read_ticks(spark, args.source).cache()
        rows, _ = correlation_matrix(ticks, daily_stats(ticks), args.days, args.end)
        if rows is not None:
            write_correlation(rows, args.out)


if __name__ == "__main__":
    main()
