"""Spark job: the daily statistics, then the correlations, in one Spark session, and a record of the run.

    spark-submit --master local[*] --py-files cryptoapp/analytics/jobs/common.py,cryptoapp/analytics/jobs/daily.py,cryptoapp/analytics/jobs/correlation.py \\
        cryptoapp/analytics/jobs/run_all.py --in .local/analytics/parquet --out .local/analytics/results [--days 90] [--end YYYY-MM-DD]

What `make analytics` runs: one JVM start instead of two, and the ticks are read from Parquet once
(cached) for both jobs. Writes <out>/daily, <out>/correlation and <out>/run (one row: when, over what,
on which master, how long), each overwritten whole.
"""

from __future__ import annotations

import datetime as dt
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling modules when run from a checkout

from pyspark.errors import AnalysisException  # noqa: E402
from pyspark.sql import functions as F  # noqa: E402
from pyspark.sql import types as T  # noqa: E402

from common import CORRELATION_DIR, DAILY_DIR, PRICES_DIR, RUN_DIR, job, read_ticks  # noqa: E402
from correlation import correlation_matrix, write_correlation  # noqa: E402
from daily import daily_stats, write_daily  # noqa: E402

RUN = T.StructType([
    T.StructField("computed_at", T.TimestampType(), False),
    T.StructField("ticks", T.LongType(), False),
    T.StructField("coins", T.ArrayType(T.StringType()), False),
    T.StructField("days", T.LongType(), False),
    T.StructField("first_day", T.DateType()),
    T.StructField("last_day", T.DateType()),
    T.StructField("span_start", T.DateType()),
    T.StructField("span_end", T.DateType()),
    T.StructField("master", T.StringType(), False),
    T.StructField("spark_version", T.StringType(), False),
    T.StructField("seconds", T.DoubleType(), False),
])


def main() -> None:
    started = time.perf_counter()
    with job(__doc__, "cryptoapp-analytics", spans=True) as (args, spark):
        try:
            ticks = read_ticks(spark, args.source).cache()
            ticks.count()  # materializes the cache, and fails here (not mid-job) when nothing was exported
        except AnalysisException as exc:
            if "PATH_NOT_FOUND" not in str(exc) and "Path does not exist" not in str(exc):
                raise
            raise SystemExit(f"analytics: no exported ticks under {args.source}/{PRICES_DIR}: run `cryptoapp export "
                             "parquet` (make analytics does) once the worker has stored prices (make run)") from None
        write_daily(daily_stats(ticks), args.out)
        daily = spark.read.parquet(f"{args.out}/{DAILY_DIR}")  # a few rows: cheaper than recomputing the plan
        rows, bounds = correlation_matrix(ticks, daily, args.days, args.end)
        if rows is None:  # nothing exported yet: an empty matrix, so the loader clears the old one
            rows = spark.createDataFrame([], "frequency string, coin_a string, coin_b string, correlation double, "
                                             "observations long, start date, end date")
        write_correlation(rows, args.out)
        summary = daily.agg(F.sum("ticks"), F.count(F.lit(1)), F.min("date"), F.max("date"),
                            F.array_sort(F.collect_set("coin"))).first()
        run = (dt.datetime.now(dt.timezone.utc), int(summary[0] or 0), list(summary[4] or []), int(summary[1]),
               summary[2], summary[3], *(bounds or (None, None)), spark.sparkContext.master, spark.version,
               round(time.perf_counter() - started, 3))
        spark.createDataFrame([run], RUN).repartition(1).write.mode("overwrite").parquet(f"{args.out}/{RUN_DIR}")
        print(f"analytics: {run[3]} coin-days of {len(run[2])} coins ({run[1]:,} ticks) -> {args.out}/{DAILY_DIR}, "
              f"{args.out}/{CORRELATION_DIR} in {run[-1]:.1f} s on {run[8]}")


if __name__ == "__main__":
    main()
