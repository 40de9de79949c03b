"""Backfill logic without services: gap finding, call planning, parsing market_chart/range, one run against fakes."""

import copy
import datetime as dt
import logging
import random

import pytest

from cryptoapp.backfill.history import LONGEST_CALL, HistoryBackfill, backfill_rate, find_gaps, plan_chunks, ticks_in
from cryptoapp.coins import resolve
from cryptoapp.schema import COINGECKO_BACKFILL, gap_threshold
from cryptoapp.settings import ConfigError, load
from cryptoapp.sources.coingecko import RateLimited, Retryable
from cryptoapp.sources.coingecko_answers import (
    SourceError, Span, chart_range_request, granularity_of, parse_market_chart_range)
from tests.support.fake_coingecko import reference

UTC = dt.timezone.utc
BTC = resolve("bitcoin")
END = dt.datetime(2025, 11, 21, 12, 0, tzinfo=UTC)
START = END - dt.timedelta(hours=168)
MIN = dt.timedelta(minutes=1)


def live(start: dt.datetime, end: dt.datetime, step: dt.timedelta = MIN) -> list[tuple[dt.datetime, None]]:
    out, t = [], start
    while t <= end:
        out.append((t, None))
        t += step
    return out


def test_nothing_stored_is_one_gap_over_the_window():
    assert find_gaps([], START, END, interval=60) == [Span(START, END)]


def test_a_missed_half_hour_of_live_ticks_is_a_gap_and_a_few_missed_polls_are_not():
    hole_start, hole_end = END - dt.timedelta(hours=3), END - dt.timedelta(hours=2, minutes=30)
    stored = (live(START, hole_start) + live(hole_end, hole_end + dt.timedelta(minutes=50))
              + live(hole_end + dt.timedelta(minutes=58), END))  # 8 min without a tick: under two 5-min steps
    assert find_gaps(stored, START, END, interval=60) == [Span(hole_start, hole_end)]


def test_gap_threshold_follows_the_interval_and_the_neighbours_granularity():
    assert gap_threshold(60) == 600  # two 5-minute steps: a shorter hole may hold no CoinGecko point
    assert gap_threshold(900) == 1800  # two polls
    assert gap_threshold(60, None, "1h") == 7200
    assert gap_threshold(60, "5m", "5m") == 600


def test_backfilled_history_at_its_own_spacing_is_not_a_gap_but_a_hole_in_it_is():
    hourly = [(START + dt.timedelta(hours=h), "1h") for h in range(169) if h not in (100, 101)]
    assert find_gaps(hourly, START, END, interval=60) == [
        Span(START + dt.timedelta(hours=99), START + dt.timedelta(hours=102))]
    five_minutes = [(END - dt.timedelta(minutes=5 * i), "5m") for i in range(288)][::-1]
    assert find_gaps(five_minutes, END - dt.timedelta(hours=24), END, interval=60) == []


def test_head_and_tail_of_the_window_and_ticks_outside_it():
    first, last = START + dt.timedelta(hours=1), END - dt.timedelta(hours=1)
    stored = [(START - dt.timedelta(hours=5), None)] + live(first, last, dt.timedelta(minutes=5)) + [
        (END + dt.timedelta(hours=1), None)]
    assert find_gaps(stored, START, END, interval=60) == [Span(START, first), Span(last, END)]


def test_an_empty_week_takes_seven_one_day_calls():
    chunks = plan_chunks([Span(START, END)])
    assert len(chunks) == 7
    assert chunks[0].start == START and chunks[-1].end == END
    assert all(c.end - c.start == LONGEST_CALL for c in chunks)
    assert all(a.end == b.start for a, b in zip(chunks, chunks[1:]))


def test_gaps_within_a_day_share_a_call_and_further_ones_do_not():
    a = Span(START, START + dt.timedelta(hours=1))
    b = Span(START + dt.timedelta(hours=20), START + dt.timedelta(hours=21))
    c = Span(START + dt.timedelta(hours=50), START + dt.timedelta(hours=50, minutes=20))
    assert plan_chunks([a, b, c]) == [Span(a.start, b.end), c]


def test_a_gap_running_past_a_calls_reach_continues_in_the_next_call():
    a = Span(START, START + dt.timedelta(hours=1))
    b = Span(START + dt.timedelta(hours=23), START + dt.timedelta(hours=26))
    assert plan_chunks([a, b]) == [Span(START, START + LONGEST_CALL), Span(START + LONGEST_CALL, b.end)]


def test_calls_are_whole_seconds_covering_the_gap():
    gap = Span(START + dt.timedelta(seconds=10.7), START + dt.timedelta(seconds=4000.2))
    (chunk,) = plan_chunks([gap])
    assert chunk == Span(START + dt.timedelta(seconds=10), START + dt.timedelta(seconds=4001))
    path, params = chart_range_request(BTC, chunk)
    assert path == "/coins/bitcoin/market_chart/range"
    assert params == {"vs_currency": "usd", "from": str(int(START.timestamp()) + 10),
                      "to": str(int(START.timestamp()) + 4001)}


def test_every_plan_covers_every_gap_with_calls_of_at_most_a_day():
    rng = random.Random(7)
    for _ in range(200):
        t, gaps = START, []
        for _ in range(rng.randint(1, 12)):
            t += dt.timedelta(seconds=rng.randint(1, 40 * 3600))
            end = t + dt.timedelta(seconds=rng.randint(601, 60 * 3600))
            gaps.append(Span(t, end))
            t = end
        chunks = plan_chunks(gaps)
        assert len(chunks) <= -(-(gaps[-1].end - gaps[0].start) // LONGEST_CALL)  # the README's bound
        assert all(dt.timedelta(0) < c.end - c.start <= LONGEST_CALL for c in chunks)
        assert all(a.end <= b.start for a, b in zip(chunks, chunks[1:]))
        for gap in gaps:
            covered = sum(((min(c.end, gap.end) - max(c.start, gap.start)).total_seconds()
                           for c in chunks if c.start < gap.end and c.end > gap.start))
            assert covered >= gap.seconds


def test_reference_answer_parses_field_by_field():
    answer = reference("coingecko-market-chart-range.json")
    chunk = Span(dt.datetime(2024, 3, 25, 8, tzinfo=UTC), dt.datetime(2024, 3, 25, 8, 15, tzinfo=UTC))
    fetched = dt.datetime(2025, 11, 21, 12, tzinfo=UTC)
    ticks, unusable = parse_market_chart_range(answer, BTC, chunk, fetched)
    assert unusable == 0
    assert [t.tick_id for t in ticks] == ["BTC_2024-03-25T08:00:00Z", "BTC_2024-03-25T08:05:00Z",
                                          "BTC_2024-03-25T08:10:00Z"]
    first = ticks[0].to_json()
    assert first == {
        "ticker": "BTC", "timestamp": "2024-03-25T08:00:00Z", "value": 66790.1234, "source": COINGECKO_BACKFILL,
        "currency": "usd", "bid_price": None, "ask_price": None, "volume_24h": 30120098712.3,
        "change_24h_pct": None, "market_cap": 1310230112345.6, "granularity": "5m",
        "fetched_at": "2025-11-21T12:00:00Z", "bid_size": None, "ask_size": None}
    assert [t.volume_24h for t in ticks] == [30120098712.3, 30188012003.9, 30240981234.0]


def test_granularity_is_measured_from_the_points():
    hour = 3_600_000
    assert granularity_of([0, hour, 2 * hour, 3 * hour + 1500], 3 * 86400) == "1h"
    assert granularity_of([0, 298_000, 601_000], 3600) == "5m"
    assert granularity_of([0, 86_400_000], 30 * 86400) == "1d"
    assert granularity_of([5], 3600) == "5m"  # one point: what CoinGecko gives for the span
    assert granularity_of([], 5 * 86400) == "1h"


def test_unusable_points_are_skipped_and_missing_numbers_stay_null():
    answer = copy.deepcopy(reference("coingecko-market-chart-range.json"))
    answer["prices"] += [[1711354500000, None], [1711354800000, -3.0], [True, 1.0], "x", [1711355100123, 66000.5]]
    answer["market_caps"].append([1711355100123, None])
    ticks, unusable = parse_market_chart_range(answer, BTC, Span(END - dt.timedelta(hours=1), END), END)
    assert unusable == 4
    last = ticks[-1]
    assert last.tick_id == "BTC_2024-03-25T08:25:00.123Z"  # milliseconds kept, as BSON keeps them
    assert (last.value, last.volume_24h, last.market_cap) == (66000.5, None, None)


@pytest.mark.parametrize("payload", [[], {"prices": None}, {"error": "coin not found"}, "<html>"])
def test_an_answer_that_is_not_a_series_is_a_source_error(payload):
    with pytest.raises(SourceError, match="not a price series"):
        parse_market_chart_range(payload, BTC, Span(START, END), END)


def test_only_points_strictly_inside_gaps_are_kept():
    answer = {"prices": [[int(START.timestamp() * 1000) + m * 60_000, 1.0 + m] for m in range(0, 61, 5)]}
    ticks, _ = parse_market_chart_range(answer, BTC, Span(START, START + dt.timedelta(hours=1)), END)
    gaps = [Span(START, START + dt.timedelta(minutes=15)), Span(START + dt.timedelta(minutes=40),
                                                             START + dt.timedelta(minutes=50))]
    kept = [(t.timestamp - START) // MIN for t in ticks_in(ticks, gaps)]
    assert kept == [5, 10, 45]


def test_backfill_leaves_the_live_polls_their_share_of_the_budget():
    assert backfill_rate(25, 60) == 23  # the defaults: 1 live poll a minute, 1 call of slack
    assert backfill_rate(20, 5) == 7
    assert backfill_rate(25, 1) == 1  # live polls take it all: the shared limiter caps the sum


def test_backfill_hours_setting():
    assert load({}).backfill_hours == 168
    assert load({"CRYPTO_BACKFILL_HOURS": "0"}).backfill_hours == 0
    assert load({"CRYPTO_BACKFILL_HOURS": "24.5"}).backfill_hours == 24.5
    for bad in ("-1", "week", "nan", "inf"):
        with pytest.raises(ConfigError, match="CRYPTO_BACKFILL_HOURS"):
            load({"CRYPTO_BACKFILL_HOURS": bad})


class MemoryStore:
    """Stores what is published at once, as a running worker's sink would."""

    def __init__(self, stored=()):
        self.docs = {}
        for tick_time, granularity in stored:
            self.docs[("BTC", tick_time)] = granularity

    async def stored_times(self, ticker, since):
        return sorted((t, g) for (k, t), g in self.docs.items() if k == ticker and t >= since)

    async def publish(self, ticks):
        for tick in ticks:
            self.docs.setdefault((tick.ticker, tick.timestamp), tick.granularity)


class ScriptedClient:
    """Answers market_chart/range with 5-minute points, after raising the scripted faults in turn."""

    def __init__(self, faults=()):
        self.faults = list(faults)
        self.calls = 0
        self.params = []

    async def get_json(self, path, params):
        self.calls += 1
        self.params.append(params)
        if self.faults:
            raise self.faults.pop(0)
        lo, hi = int(params["from"]), int(params["to"])
        times = range(lo - lo % 300 + 300, hi + 1, 300)
        return {"prices": [[t * 1000, 100.0 + t % 7] for t in times],
                "market_caps": [[t * 1000, 1e9] for t in times], "total_volumes": [[t * 1000, 5e8] for t in times]}


def backfill_for(store, client, **kwargs):
    return HistoryBackfill(store, client, store.publish, interval=60, requests_per_minute=6000,
                           clock=lambda: END.timestamp(), **kwargs)


async def test_a_second_run_finds_no_gaps_and_calls_nothing():
    store, client = MemoryStore(live(END - dt.timedelta(hours=30), END - dt.timedelta(hours=29))), ScriptedClient()
    first = await backfill_for(store, client).run([BTC], 48)
    assert (first.calls, first.unfinished) == (2, [])  # 19 h before the live hour, 29 h after: two calls
    assert first.ticks == len(store.docs) - 61
    second = await backfill_for(store, client).run([BTC], 48)
    assert (second.calls, second.ticks) == (0, 0)
    assert client.calls == 2


async def test_rate_limit_pauses_with_one_warning_and_goes_on(caplog):
    client = ScriptedClient([RateLimited("CoinGecko rate limit (HTTP 429)", retry_after=0.0)])
    with caplog.at_level(logging.WARNING):
        report = await backfill_for(MemoryStore(), client).run([BTC], 2)
    assert (report.calls, report.unfinished, report.ticks) == (2, [], 23)  # 10:05 ... 11:55
    assert client.params[0] == client.params[1]  # the same call once more, not a skipped span
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "HTTP 429" in warnings[0] and "pausing the backfill" in warnings[0]


async def test_unreachable_source_stops_the_run_and_a_bad_coin_only_itself(caplog):
    eth = resolve("ethereum")
    report = await backfill_for(MemoryStore(), ScriptedClient([Retryable("CoinGecko unreachable")])).run([BTC, eth], 2)
    assert (report.calls, report.unfinished) == (1, ["BTC", "ETH"])
    report = await backfill_for(MemoryStore(), ScriptedClient([SourceError("HTTP 404")])).run([BTC, eth], 2)
    assert (report.calls, report.unfinished, sorted(report.published)) == (2, ["BTC"], ["BTC", "ETH"])
    assert report.published["ETH"] and not report.published["BTC"]
