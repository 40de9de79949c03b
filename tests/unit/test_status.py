"""The pipeline status line: what the dashboard says of the workers, their sources and the backfill."""

import datetime as dt

from dashboard.status import describe

NOW = dt.datetime(2026, 12, 1, 6, 0, tzinfo=dt.timezone.utc)


def worker(seconds_ago=5, leader=True, **sources):
    return {"worker": "host:6066", "heartbeat": NOW - dt.timedelta(seconds=seconds_ago), "leader": leader,
            "sources": sources, "lag": {"0": 3}, "backfill": {"state": "done"}}


def test_no_worker_ever_and_a_silent_one_are_told_apart():
    assert describe([], NOW).level == "warning" and "make run" in describe([], NOW).text
    gone = describe([worker(seconds_ago=150)], NOW)
    assert gone.level == "error" and gone.text.startswith("No worker heartbeat for 2 min")


def test_a_running_worker_with_an_unreachable_source_says_so_with_the_time():
    health = {"ok_at": None, "error": "CoinGecko unreachable at https://api.coingecko.com/api/v3 "
                                      "(ClientConnectorDNSError)", "error_since": "2026-12-01T05:58:00Z"}
    state = describe([worker(coingecko=health)], NOW)
    assert state.level == "warning"
    assert state.lines[0] == "1 worker up"
    assert state.lines[1].endswith("(ClientConnectorDNSError) since 05:58 UTC")


def test_backfill_progress_and_a_backlog_are_shown():
    doc = worker(coingecko={"ok_at": "2026-12-01T05:59:48Z", "error": None, "error_since": None})
    doc["backfill"] = {"state": "running", "calls": 3, "planned": 35, "coins_done": 1, "coins": 5}
    doc["lag"] = {"0": 1500, "1": 20}
    state = describe([doc, worker(leader=False)], NOW)
    assert state.level == "ok"
    assert state.lines == ("2 workers up", "CoinGecko: last answer 12 s ago",
                           "backfill 3 of 35 calls so far (1 of 5 coins looked at)", "1,523 ticks waiting to be stored")
