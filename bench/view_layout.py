"""`python -m bench.view_layout`: why the serving views are packed rings, measured on the server `make run` starts.

One series' 168 h at 5 min (2,016 bars, what the history tab draws) read three ways:
- packed: the product's own view document (cryptoapp.candles.rings.BarRing), one document, numbers as binary arrays;
- nested: the same bars as an array of 2,016 subdocuments in one document;
- capped: one document per bar in a capped collection of this series and resolution alone (the option
  shared/reference/services.md suggests: `find({})` with no filter returns them straight from SQL);
- per_bar: one document per bar in a collection of bars, the range read a MongoDB user would write first
  (`{series, t: {$gte: ...}}` over an index), with the collection holding 1, 10 and 100 series' bars.
And a one-key `_id` read of a small document beside growing amounts of other data in the same collection: on
FerretDB 1.24 (SQLite) that is the only filter pushed down, and its cost still follows the collection's bytes,
which is why the views have a collection of their own (docs/views.md).

Prints JSON; docs/views.md has a run. Nothing of the product is changed; a database of its own is dropped at the end.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import statistics
import sys
import time

from bench import harness
from cryptoapp.candles.bars import Bar
from cryptoapp.candles.rings import RING_SIZE, BarRing
from cryptoapp.schema import RESOLUTIONS, UTC

BARS = RING_SIZE["5m"]


def _bars(count: int, end: dt.datetime, rng: random.Random) -> list[Bar]:
    step = dt.timedelta(seconds=RESOLUTIONS["5m"])
    price, bars = 100.0, []
    for i in range(count):
        start = end - step * (count - i)
        o = price
        price *= 1 + rng.gauss(0, 0.002)
        bars.append(Bar(series="SIM", ticker="SIM", resolution="5m", start=start, open=o, high=max(o, price) * 1.001,
                        low=min(o, price) * 0.999, close=price, ticks=5, volume_24h=1e9, sources=("simulated",),
                        currency="usd", first_at=start, last_at=start + step / 2))
    return bars


def _time(read, runs: int) -> dict:
    read()  # warm: the first read pays for the server's caches
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        read()
        samples.append((time.perf_counter() - started) * 1000)
    return {"median_ms": round(statistics.median(samples), 2), "p95_ms": harness.percentiles(samples)["p95"]}


def run(runs: int = 20) -> dict:
    client = harness.mongo()
    db = client[harness.unique_name("layout")]
    rng = random.Random(3)
    end = dt.datetime.now(UTC).replace(second=0, microsecond=0)
    bars = _bars(BARS, end, rng)
    out: dict = {"bars": BARS, "runs": runs, "server": harness.machine(client).get("mongo_server")}
    try:
        ring = BarRing("SIM", "SIM", "5m")
        for bar in bars:
            ring.put(bar)
        doc = ring.document(end)
        db.packed.insert_one(doc)
        packed_kb = round(sum(len(v) for v in doc.values() if isinstance(v, bytes)) / 1024, 1)
        # The read as the dashboard makes it: the document, unpacked into the chart's rows.
        out["packed"] = {**_time(lambda: BarRing.from_document(db.packed.find_one({"_id": doc["_id"]})).rows(), runs),
                         "arrays_kb": packed_kb}
        rows = [{"t": b.start, "o": b.open, "h": b.high, "l": b.low, "c": b.close, "n": b.ticks, "v": b.volume_24h}
                for b in bars]
        db.nested.insert_one({"_id": "SIM_5m", "bars": rows})
        out["nested"] = _time(lambda: db.nested.find_one({"_id": "SIM_5m"}), runs)
        db.create_collection("capped_SIM_5m", capped=True, size=4 * 2**20, max=BARS)
        db.capped_SIM_5m.insert_many([dict(r) for r in rows])
        out["capped"] = _time(lambda: list(db.capped_SIM_5m.find({})), runs)
        since = bars[0].start
        out["per_bar"] = []
        for series in (1, 10, 100):
            have = db.per_bar.estimated_document_count() // BARS
            if have == 0:
                db.per_bar.create_index([("series", 1), ("t", 1)])
            for s in range(have, series):
                db.per_bar.insert_many([{"_id": f"S{s}_{r['t'].isoformat()}", "series": f"S{s}", **r} for r in rows])
            timing = _time(lambda: list(db.per_bar.find({"series": "S0", "t": {"$gte": since}})), runs)
            out["per_bar"].append({"series_in_collection": series, "documents": series * BARS, **timing})
        out["id_read_beside"] = []
        filler = "x" * 10_000
        for megabytes in (0, 10, 100):
            have = db.mixed.count_documents({"_id": {"$ne": "small"}}) if megabytes else 0
            if not megabytes:
                db.mixed.insert_one({"_id": "small", "value": 1})
            for first in range(have, megabytes * 100, 100):
                db.mixed.insert_many([{"_id": f"filler{i}", "blob": filler}
                                      for i in range(first, min(first + 100, megabytes * 100))])
            timing = _time(lambda: db.mixed.find_one({"_id": "small"}), runs)
            out["id_read_beside"].append({"other_data_mb": megabytes, **timing})
    finally:
        client.drop_database(db.name)
        client.close()
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.view_layout", description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    print(json.dumps(run(parser.parse_args(argv).runs), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
