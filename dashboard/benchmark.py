"""Times load_history for a 168 h window (request to chart-ready DataFrame): `python -m dashboard.benchmark --docs 10080`.

It seeds (once) a database `bench-dashboard-<docs>` with `docs` BTC ticks evenly spread over the
168 hours before a fixed end, then calls load_history as the history tab does and prints p50/p95.
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import os
import random
import statistics
import sys
import time

from dashboard import data

UTC = dt.timezone.utc
WINDOW_H = 168


def ticks(count: int, end: dt.datetime):
    """`count` BTC ticks shaped like the worker's, evenly spaced over the 168 h before `end`."""
    rng = random.Random(1)
    step = WINDOW_H * 3600 / count
    price = 87000.0
    for i in range(count):
        ts = end - dt.timedelta(seconds=step * (count - 1 - i))
        ts = ts.replace(microsecond=ts.microsecond // 1000 * 1000)
        price *= math.exp(rng.gauss(0.0, 0.0002))
        stamp = ts.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond // 1000:03d}Z"
        yield {"_id": f"BTC_{stamp}", "timestamp": ts, "value": price, "sensor_id": "BTC", "bid_price": None,
               "ask_price": None, "volume_24h": 3.1e10, "change_24h_pct": 1.5, "market_cap": price * 19.9e6,
               "currency": "usd", "source": "coingecko", "inserted_at": ts}


def seeded(db, count: int) -> dt.datetime:
    """The end of the seeded window; seeds the database first unless it already holds `count` ticks."""
    meta = db["bench_meta"].find_one({"_id": "window"})
    if meta and db[data.COLLECTION].estimated_document_count() == count:
        return meta["end"]
    db.client.drop_database(db.name)
    end = dt.datetime.now(UTC).replace(microsecond=0)
    keys, name = data.INDEX
    db[data.COLLECTION].create_index(keys, name=name)
    started, batch = time.perf_counter(), []
    for doc in ticks(count, end):
        batch.append(doc)
        if len(batch) == 10_000:
            db[data.COLLECTION].insert_many(batch, ordered=False)
            batch = []
    if batch:
        db[data.COLLECTION].insert_many(batch, ordered=False)
    db["bench_meta"].insert_one({"_id": "window", "end": end, "docs": count})
    print(f"seeded {count:,} ticks in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    return end


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=10_080, help="ticks in the 168 h window (10080 = 1/min)")
    parser.add_argument("--runs", type=int, default=20, help="timed calls after one warm-up call")
    parser.add_argument("--max-points", type=int, default=data.DEFAULT_MAX_POINTS)
    parser.add_argument("--uri", default=os.environ.get("MONGO_URI", "mongodb://localhost:27017"))
    parser.add_argument("--drop", action="store_true", help="drop the benchmark database afterwards")
    args = parser.parse_args(argv)

    client = data.connect(args.uri, timeout_ms=5000)
    db = client[f"bench-dashboard-{args.docs}"]
    end = seeded(db, args.docs)
    frame = data.load_history(db, "BTC", WINDOW_H, now=end, max_points=args.max_points)  # warm-up
    times = []
    for _ in range(args.runs):
        started = time.perf_counter()
        frame = data.load_history(db, "BTC", WINDOW_H, now=end, max_points=args.max_points)
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    p95 = times[min(len(times) - 1, math.ceil(0.95 * len(times)) - 1)]
    print(f"load_history 168 h, {frame.attrs['ticks']:,} ticks -> {len(frame):,} rows "
          f"(downsampled: {frame.attrs['downsampled'] or 'no'}, server buckets: {data.server_buckets(db)}); "
          f"{len(times)} runs: p50 {statistics.median(times):,.0f} ms, p95 {p95:,.0f} ms, "
          f"min {times[0]:,.0f} ms, max {times[-1]:,.0f} ms")
    if args.drop:
        client.drop_database(db.name)
    client.close()


if __name__ == "__main__":
    main()
