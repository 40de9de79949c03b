"""The analytics' pure logic without a server: what the export picks and writes, the loader's documents, spark-submit's line."""

import datetime as dt
import math

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from cryptoapp.analytics import submit
from cryptoapp.analytics.export import (TICKS_SCHEMA, DayBuffers, days_to_export, exported_days, partition_path,
                                        ticks_table, write_day)
from cryptoapp.analytics.load import correlation_documents, daily_documents, run_document, same_result

UTC = dt.timezone.utc
D = [dt.date(2025, 11, d) for d in range(18, 23)]


def doc(hour: int, **fields) -> dict:
    when = dt.datetime(2025, 11, 21, hour, tzinfo=UTC)
    return {"_id": f"BTC_2025-11-21T{hour:02d}:00:00Z", "timestamp": when, "value": 100.0, "sensor_id": "BTC",
            "currency": "usd", "source": "coingecko", "inserted_at": when, **fields}


def test_ticks_table_keeps_nulls_and_never_turns_a_non_number_into_a_price():
    table = ticks_table([doc(0, bid_price=99.5, volume_24h=3), doc(1, bid_price=None, volume_24h=float("nan"),
                                                                    market_cap="n/a", granularity="5m")])
    assert table.schema.equals(TICKS_SCHEMA)
    rows = table.to_pylist()
    assert [r["bid_price"] for r in rows] == [99.5, None]
    assert [r["volume_24h"] for r in rows] == [3.0, None]  # an int stored by another writer is a float64 here
    assert [r["market_cap"] for r in rows] == [None, None] and [r["granularity"] for r in rows] == [None, "5m"]
    assert rows[1]["timestamp"] == dt.datetime(2025, 11, 21, 1, tzinfo=UTC)


def test_partition_paths_are_hive_style_and_take_only_tickers(tmp_path):
    assert partition_path(tmp_path, "BTC", D[3]) == tmp_path / "prices" / "coin=BTC" / "date=2025-11-21"
    with pytest.raises(ValueError):
        partition_path(tmp_path, "../etc", D[3])


def test_days_to_export_takes_new_changed_and_today_only():
    stored = {("BTC", D[0]): 10, ("BTC", D[1]): 11, ("BTC", D[2]): 12, ("ETH", D[2]): 5, ("BTC", D[4]): 3}
    exported = {("BTC", D[0]): 10, ("BTC", D[1]): 9, ("ETH", D[2]): 5, ("BTC", D[4]): 3}
    assert days_to_export(stored, exported, today=D[4]) == [("BTC", D[1]), ("BTC", D[2]), ("BTC", D[4])]
    assert days_to_export(stored, exported, today=D[4], since=D[2]) == [("BTC", D[2]), ("BTC", D[4])]
    assert len(days_to_export(stored, exported, today=D[4], rewrite=True)) == len(stored)


def test_day_buffers_keep_only_chosen_days_and_give_each_in_time_order(monkeypatch):
    monkeypatch.setattr(DayBuffers, "FLUSH_ROWS", 2)  # several Arrow chunks per day, as in a large export
    buffers = DayBuffers([("BTC", D[3])])
    kept = [buffers.add(doc(h)) for h in (5, 1, 3, 0, 4)]
    kept.append(buffers.add({**doc(2), "sensor_id": "ETH"}))
    kept.append(buffers.add({**doc(2), "timestamp": dt.datetime(2025, 11, 20, 23, 59, tzinfo=UTC)}))
    assert kept == [True] * 5 + [False, False]
    [(key, table)] = list(buffers.days())
    assert key == ("BTC", D[3]) and [t.hour for t in table.column("timestamp").to_pylist()] == [0, 1, 3, 4, 5]
    everything = DayBuffers(None)  # a first export: every day of every ticker, malformed sensor_ids set aside
    assert [everything.add(d) for d in (doc(1), {**doc(2), "sensor_id": "ETH"}, {**doc(3), "sensor_id": "b@d"})] == \
        [True, True, False]
    assert [key for key, _ in everything.days()] == [("BTC", D[3]), ("ETH", D[3])] and everything.ignored == {"b@d"}


def test_write_day_replaces_a_day_whole_and_its_footer_tells_the_count(tmp_path):
    write_day(tmp_path, "BTC", D[3], ticks_table([doc(0), doc(1), doc(2)]))
    write_day(tmp_path, "BTC", D[3], ticks_table([doc(5)]))
    assert pq.read_table(partition_path(tmp_path, "BTC", D[3])).num_rows == 1
    assert exported_days(tmp_path) == {("BTC", D[3]): 1}
    assert [p.name for p in (tmp_path / "prices" / "coin=BTC").iterdir()] == ["date=2025-11-21"]


def test_loader_documents_have_deterministic_ids_and_no_nan():
    daily = pa.Table.from_pylist([{
        "coin": "BTC", "date": D[3], "open": 1.0, "high": 2.0, "low": 0.5, "close": 1.5, "return": None,
        "volatility": float("nan"), "volatility_annualized": None, "max_drawdown": 0.5, "ticks": 4, "minutes": 3,
        "coverage": 3 / 1440, "returns_1m": 0, "first_tick": dt.datetime(2025, 11, 21, 0, 0, 0, 123456, tzinfo=UTC),
        "last_tick": dt.datetime(2025, 11, 21, 1, tzinfo=UTC), "sources": ["coingecko"]}])
    [d] = daily_documents(daily)
    assert d["_id"] == "BTC_2025-11-21" and d["date"] == "2025-11-21"
    assert d["return"] is None and d["volatility"] is None  # null stays null, NaN becomes null
    assert d["first_tick"].microsecond == 123000  # what BSON keeps, so a reload compares equal
    corr = pa.Table.from_pylist([{"frequency": "hourly", "coin_a": "BTC", "coin_b": "ETH", "correlation": 0.5,
                                  "observations": 20, "start": D[0], "end": D[3]}])
    assert correlation_documents(corr)[0]["_id"] == "hourly_BTC_ETH"
    run = run_document(None, dt.datetime(2025, 11, 21, 12, tzinfo=UTC))
    assert run["_id"] == "2025-11-21T12:00:00Z" and run["ticks"] is None


def test_same_result_tolerates_summation_order_only():
    a = {"_id": "x", "volatility": 0.1 + 0.2, "ticks": 3}
    assert same_result(a, {"_id": "x", "volatility": 0.3, "ticks": 3})
    assert not same_result(a, {"_id": "x", "volatility": 0.3 * (1 + 1e-6), "ticks": 3})
    assert not same_result(a, {"_id": "x", "volatility": 0.3, "ticks": 4})
    assert math.isclose(a["volatility"], 0.3)


def test_spark_submit_line_passes_master_and_user_options_through():
    line = submit.command("in", "out", 30, {"SPARK_MASTER": "spark://head:7077",
                                            "SPARK_SUBMIT_ARGS": "--deploy-mode cluster --conf spark.executor.memory=8g"})
    assert line[1:3] == ["--master", "spark://head:7077"]
    user = line.index("--deploy-mode")
    assert line[user:user + 4] == ["--deploy-mode", "cluster", "--conf", "spark.executor.memory=8g"]
    assert user > line.index("spark.log.level=WARN")  # after ours: a user's --conf wins
    assert line[-7].endswith("cryptoapp/analytics/jobs/run_all.py")
    assert line[-6:] == ["--in", "in", "--out", "out", "--days", "30"]
    assert submit.command("in", "out", environ={})[2] == "local[*]"


def test_submit_says_in_one_line_when_nothing_was_exported(tmp_path, capsys):
    assert submit.main(["--in", str(tmp_path), "--out", str(tmp_path / "results")]) == 1
    assert capsys.readouterr().err.strip() == (
        f"analytics: no exported ticks under {tmp_path}/prices: run `cryptoapp export parquet --out {tmp_path}` "
        "(make analytics does) once the worker has stored prices (make run)")


def test_submit_names_a_missing_java_and_accepts_this_machines(tmp_path):
    assert submit.java_problem({"JAVA_HOME": str(tmp_path)}).startswith("no Java found")
    assert submit.java_problem({}) is None  # /usr/bin/java, 17
