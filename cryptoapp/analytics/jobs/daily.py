"""Spark job: per coin and UTC day, OHLC, return, realized volatility, max drawdown, tick count and coverage.

    spark-submit --master local[*] cryptoapp/analytics/jobs/daily.py --in .local/analytics/parquet --out .local/analytics/results

Definitions (docs/analytics.md has them with their formulas):
- open / close: the day's first / last tick price (by time, then tick id); high / low: its extremes.
- return: close / previous UTC day's close - 1; null when the previous day has no tick.
- volatility: realized daily volatility, sqrt(sum r_i^2) over the day's 1-minute log returns
  r_i = ln(p_m / p_{m-1}), p_m the last price in minute m, taken only between two adjacent minutes that
  both hold a tick (a return across a gap is not a 1-minute return). Not annualized; null without any
  1-minute return. volatility_annualized = volatility * sqrt(365).
- max_drawdown: the largest fall from the day's running high, 1 - price / running high, over all ticks.
- coverage: minutes of the day's 1440 that hold at least one tick (a day with gaps says so).
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling common.py when run from a checkout

from pyspark.sql import DataFrame  # noqa: E402
from pyspark.sql import functions as F  # noqa: E402
from pyspark.sql.window import Window  # noqa: E402

from common import DAILY_DIR, DAYS_PER_YEAR, MINUTES_PER_DAY, job, read_ticks  # noqa: E402

BY_DAY = ("coin", "date")


def tick_order():
    """Ticks of one moment from two sources are ordered by their _id, so open and close never depend on chance."""
    return F.struct("timestamp", "tick_id")

COLUMNS = ("coin", "date", "open", "high", "low", "close", "return", "volatility", "volatility_annualized",
           "max_drawdown", "ticks", "minutes", "coverage", "returns_1m", "first_tick", "last_tick", "sources")


def minute_prices(ticks: DataFrame) -> DataFrame:
    """The ticks resampled to 1-minute last prices: one row per coin, day and minute that holds a tick."""
    return ticks.withColumn("minute", F.date_trunc("minute", "timestamp")) \
        .groupBy(*BY_DAY, "minute").agg(F.max_by("value", tick_order()).alias("price"))


def minute_returns(minutes: DataFrame) -> DataFrame:
    """Each minute's log return from the minute before; null when that minute holds no tick."""
    before = Window.partitionBy(*BY_DAY).orderBy("minute")
    adjacent = F.unix_seconds("minute") - F.unix_seconds(F.lag("minute").over(before)) == 60
    return minutes.withColumn("r", F.when(adjacent, F.log(F.col("price") / F.lag("price").over(before))))


def daily_stats(ticks: DataFrame) -> DataFrame:
    """One row per coin and day with COLUMNS (see the module's docstring)."""
    ohlc = ticks.groupBy(*BY_DAY).agg(
        F.min_by("value", tick_order()).alias("open"),
        F.max("value").alias("high"),
        F.min("value").alias("low"),
        F.max_by("value", tick_order()).alias("close"),
        F.count(F.lit(1)).alias("ticks"),
        F.min("timestamp").alias("first_tick"),
        F.max("timestamp").alias("last_tick"),
        F.array_sort(F.collect_set("source")).alias("sources"),
    )
    running_high = Window.partitionBy(*BY_DAY).orderBy("timestamp", "tick_id") \
        .rowsBetween(Window.unboundedPreceding, Window.currentRow)
    drawdown = ticks.withColumn("drawdown", 1 - F.col("value") / F.max("value").over(running_high)) \
        .groupBy(*BY_DAY).agg(F.max("drawdown").alias("max_drawdown"))
    minutes = minute_returns(minute_prices(ticks)).groupBy(*BY_DAY).agg(
        F.count(F.lit(1)).alias("minutes"),
        F.count("r").alias("returns_1m"),
        F.sqrt(F.sum(F.col("r") * F.col("r"))).alias("volatility"),
    )
    days = ohlc.join(drawdown, list(BY_DAY)).join(minutes, list(BY_DAY))
    previous = Window.partitionBy("coin").orderBy("date")
    follows = F.datediff("date", F.lag("date").over(previous)) == 1
    return days.withColumn("return", F.when(follows, F.col("close") / F.lag("close").over(previous) - 1)) \
        .withColumn("coverage", F.col("minutes") / F.lit(MINUTES_PER_DAY)) \
        .withColumn("volatility_annualized", F.col("volatility") * F.lit(math.sqrt(DAYS_PER_YEAR))) \
        .select(*COLUMNS)


def write_daily(daily: DataFrame, results: str) -> None:
    # One small file (coins x days rows); repartition, unlike coalesce, keeps the work before it parallel.
    daily.repartition(1).sortWithinPartitions(*BY_DAY).write.mode("overwrite").parquet(f"{results}/{DAILY_DIR}")


def main() -> None:
    with job(__doc__, "cryptoapp-analytics-daily") as (args, spark):
        write_daily(daily_stats(read_ticks(spark, args.source)), args.out)


if __name__ == "__main__":
    main()
