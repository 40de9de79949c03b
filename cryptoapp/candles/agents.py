"""Candles: the sink's ticks into minute bars held in a changelog-backed table (feed_candles, called by the sink
once per batch), every bar at 1m/5m/1h/1d sent to crypto-candles as it changes, a clock that closes the bars of quiet
coins, and the agent that keeps crypto.candles and the serving views.

Faust's windowed tables are avoided on purpose (shared/reference/services.md): a window closes only when a later
event for its table arrives (faust-streaming issue 250), windowed state was reported lost on restart (issue 514)
and multi-partition closing misbehaves (issue 172). A plain table keyed by minute, restored from its changelog,
plus a clock topic that a leader timer feeds on every partition (so each partition's owner hears the time even
when its coins are quiet) has none of these: tests/integration/test_candles.py proves each.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from collections.abc import Sequence

from faust.types import EventT

from cryptoapp.app import app
from cryptoapp.candles.archive import rebuild, retention_starts
from cryptoapp.candles.bars import (
    COMPACT_AFTER_S, MINUTE, Bar, Minute, bar_from_json, bar_to_json, merge, minute_key, parents, time_ms)
from cryptoapp.candles.serving import ViewWriter
from cryptoapp.candles.topics import (
    REPLAY_HOURS, candle_marks, candle_minutes, candles_topic, clock_topic, raw_topic, replay, view_ticks_topic)
from cryptoapp.forecasts.agents import relay_minutes
from cryptoapp.prices.models import PriceTick, decode_tick
from cryptoapp.schema import RESOLUTIONS, UTC
from cryptoapp.storage import StorageError
from cryptoapp.streams import in_partition_of, written_before_commit

log = logging.getLogger(__name__)

VIEWS_BATCH, VIEWS_WINDOW = 5000, 1.0   # views are saved at most about once a second per series
CLOCK_EVERY = 5.0                         # seconds between two clock messages per coin
RETENTION_SWEEP_EVERY = 3600.0            # seconds between two retention sweeps (candles, CRYPTO_ARCHIVE_DAYS)
settings = app.settings


_views: ViewWriter | None = None


def view_writer() -> ViewWriter:
    """The rings this worker writes, on the app's store (a test may give the app another one)."""
    global _views
    if _views is None or _views.store is not app.store.candles:
        _views = ViewWriter(app.store.candles)
    return _views


@app.on_partitions_revoked.connect
async def _forget_views(app_, revoked, **kwargs) -> None:  # noqa: ARG001 (a signal's signature)
    view_writer().forget()  # the series may move to another worker: the next write here reloads what it needs
    _bars.clear()


# --- the bars: minutes from the table, coarser bars merged from them -------------------------------------------
# Parsed minute bars, by key, with the table value they were parsed from: a 1d bar merges up to 1,440 minutes.
_bars: dict[str, tuple[object, Bar]] = {}


def minute_bar(key: str, batch: dict[str, Minute]) -> Bar | None:
    if key in batch:
        return batch[key].bar()
    raw = candle_minutes.get(key)
    if raw is None:
        return None
    cached = _bars.get(key)
    if cached is None or cached[0] is not raw:
        cached = _bars[key] = (raw, Minute.from_json(raw).bar())
    return cached[1]


def bar_at(series: str, resolution: str, start_s: int, batch: dict[str, Minute]) -> Bar | None:
    """The bar of `series` at `resolution` starting at `start_s`, from the minutes held (None: no tick in it)."""
    children = [bar for s in range(start_s, start_s + RESOLUTIONS[resolution], MINUTE)
                if (bar := minute_bar(minute_key(series, s), batch)) is not None]
    if not children:
        return None
    return children[0] if resolution == "1m" else merge(children, resolution)


async def emit(bars: list[tuple[Bar, bool]]) -> None:
    pending = [await candles_topic.send(key=bar.ticker.encode(), value=json.dumps(bar_to_json(bar, closed)).encode())
               for bar, closed in bars]
    for fut in pending:
        await fut


# --- the agent that makes them ----------------------------------------------------------------------------------

def _new_mark(ticker: str, start_s: int, partition: int) -> dict:
    return {"ticker": ticker, "partition": partition, "compacted": start_s, "evicted": start_s,
            "closed": {res: start_s // seconds * seconds for res, seconds in RESOLUTIONS.items()}}


async def feed_candles(ticks: Sequence[tuple[EventT, PriceTick]], extra: Sequence[EventT]) -> None:
    """The sink's stored ticks (event, tick), and the replayed ticks and clocks among `extra`, into the candles:
    each changed minute written once, every bar it changes sent to crypto-candles, each series' new ticks to the
    views; bars closed, compacted and evicted in the partitions whose clock came.

    A bug here is logged and the batch goes on: the archive never waits for its views (verify finds the damage,
    rebuild repairs it).
    """
    try:
        await _feed(ticks, extra)
    except Exception:
        log.exception("candles: a batch of %d ticks was not added to the candles", len(ticks))


async def _feed(ticks: Sequence[tuple[EventT, PriceTick]], extra: Sequence[EventT]) -> None:
    now = time.time()
    oldest = now - settings.candles_hours * 3600
    grace = settings.candle_grace_s
    clocks: dict[int, EventT] = {}
    stored = [tick for _, tick in ticks]
    ticks = list(ticks)
    for event in extra:
        if event.message.topic == clock_topic.get_topic_name():
            clocks[event.message.partition] = event
            continue
        try:
            ticks.append((event, decode_tick(event.value)))
        except Exception:
            log.warning("candles: an unreadable replayed tick at %s[%d]@%d was skipped", event.message.topic,
                        event.message.partition, event.message.offset)
    batch: dict[str, Minute] = {}
    changed: dict[str, EventT] = {}
    too_old = 0
    for event, tick in ticks:
        at = time_ms(tick.timestamp)
        start_s = at // 1000 // MINUTE * MINUTE
        if start_s < oldest:
            too_old += 1
            continue
        key = minute_key(tick.series, start_s)
        minute = batch.get(key)
        if minute is None:
            raw = candle_minutes.get(key)
            minute = batch[key] = Minute.from_json(raw) if raw else Minute(tick.series, tick.ticker, start_s,
                                                                            tick.currency)
        if minute.absorb(at, tick.value, tick.volume_24h, tick.source, tick.granularity):
            minute.keep_bounded()
            changed[key] = event
            if tick.series not in candle_marks:
                with in_partition_of(event):
                    candle_marks[tick.series] = _new_mark(tick.ticker, start_s, event.message.partition)
    for key, event in changed.items():
        with in_partition_of(event):
            candle_minutes[key] = batch[key].to_json()
    touched = {(batch[key].series, res, start) for key in changed for res, start in parents(batch[key].start_s).items()}
    out = [(bar, bar.end.timestamp() + grace <= now) for series, res, start in sorted(touched)
           if (bar := bar_at(series, res, start, batch)) is not None]
    for partition, event in clocks.items():
        out += close_due(partition, event, now, grace, oldest)
    # The table writes wait in Faust's producer buffer; sending them now keeps a burst (a backfill, the demo's
    # history) from filling it, which Faust reports as a warning per batch and answers by pausing every stream.
    await app.producer.buffer.flush()
    await emit(out)
    await emit_view_ticks(stored)
    if too_old:
        log.warning("candles: %d ticks older than CRYPTO_CANDLES_HOURS=%g were left out of the candles (still "
                    "archived); `cryptoapp candles rebuild --hours ...` adds them", too_old, settings.candles_hours)


async def emit_view_ticks(ticks: list[PriceTick]) -> None:
    """The batch's stored ticks, one message per series, for the views' rings of recent ticks and crypto.latest."""
    by_series: dict[str, list[PriceTick]] = {}
    for tick in ticks:
        by_series.setdefault(tick.series, []).append(tick)
    pending = [await view_ticks_topic.send(key=group[0].ticker.encode(),
                                           value=json.dumps([t.to_json() for t in group]).encode())
               for group in by_series.values()]
    for fut in pending:
        await fut


def close_due(partition: int, event: EventT, now: float, grace: float, oldest: float) -> list[tuple[Bar, bool]]:
    """For every series of `partition`: the bars that ended over `grace` ago, closed; old minutes compacted, then
    dropped past the horizon."""
    out = []
    for series, mark in [(s, m) for s, m in candle_marks.items() if m["partition"] == partition]:
        mark = {**mark, "closed": dict(mark["closed"])}
        for res, seconds in RESOLUTIONS.items():
            start = mark["closed"][res]
            while start + seconds + grace <= now:
                bar = bar_at(series, res, start, {})
                if bar is not None:
                    out.append((bar, True))
                start += seconds
            mark["closed"][res] = start
        with in_partition_of(event):
            for start in range(mark["compacted"], int(min(now - COMPACT_AFTER_S, mark["closed"]["1m"])), MINUTE):
                key = minute_key(series, start)
                raw = candle_minutes.get(key)
                if raw is not None and len(raw["ticks"]) > 4:
                    minute = Minute.from_json(raw)
                    minute.compact()
                    candle_minutes[key] = minute.to_json()
                mark["compacted"] = start + MINUTE
            for start in range(mark["evicted"], int(oldest) // MINUTE * MINUTE, MINUTE):
                key = minute_key(series, start)
                if key in candle_minutes:
                    del candle_minutes[key]
                _bars.pop(key, None)
                mark["evicted"] = start + MINUTE
            candle_marks[series] = mark
    return out


if settings.candles:
    @app.timer(interval=CLOCK_EVERY, on_leader=True)
    async def candle_clock() -> None:
        """Tells every partition the time, so the bars of a quiet coin close too, whichever worker holds it (the
        leader only: one clock)."""
        stamp = str(time.time()).encode()
        pending = [await clock_topic.send(key=b"clock", value=stamp, partition=p) for p in range(settings.partitions)]
        for fut in pending:
            await fut


# --- the sink: crypto.candles and the serving views ---------------------------------------------------------------

async def views_batch(events: Sequence[EventT]) -> None:
    """Closed bars into crypto.candles; every bar, the ticks and the newest tick per series into the views."""
    bars: dict[str, tuple[Bar, bool]] = {}
    ticks: list[PriceTick] = []
    for event in events:
        if event.message.topic == candles_topic.get_topic_name():
            bar, closed = bar_from_json(json.loads(event.value))
            bars[bar.id] = (bar, closed or bars.get(bar.id, (bar, False))[1])
        else:
            ticks += [decode_tick(json.dumps(item).encode()) for item in json.loads(event.value)]
    await app.store.candles.store_candles(bar for bar, closed in bars.values() if closed)
    views = view_writer()
    await views.put_bars(bar for bar, _ in bars.values())
    await views.put_ticks(ticks)
    await app.store.ticks.save_latest(ticks)


if settings.candles:
    @app.agent(raw_topic(settings.candles_topic, view_ticks_topic.get_topic_name(), declare=False), concurrency=1)
    async def store_views(stream):
        """Batches of about a second into crypto.candles and the views; offsets wait until they are written."""
        async for events in stream.take_events(VIEWS_BATCH, within=VIEWS_WINDOW):
            await written_before_commit(app, events, _views_until_written, "the views")


async def _views_until_written(events: Sequence[EventT]) -> None:
    await app.store.until_written(lambda: views_batch(events), f"a batch of {len(events)} bars and ticks")
    if settings.forecasts:  # crypto-candles' one reader hands the closed minutes to the forecasting agent's topic
        await relay_minutes(events)


if settings.candles:
    @app.task(on_leader=True)
    async def views_from_archive() -> None:
        """An archive without views (stored before candles existed) gets its candles and views made once, at
        start-up, so the first page shows its history without waiting for new ticks."""
        try:
            if await app.store.candles.has_views() or not await app.store.ticks.has_ticks():
                return
            log.warning("candles: the archive holds ticks but there are no views: making them from the archive once "
                        "(`cryptoapp candles rebuild` does the same); the page fills when it is done")
            await rebuild(app.store, grace_s=settings.candle_grace_s, replay=replay,
                          replay_since=dt.datetime.now(UTC) - dt.timedelta(hours=REPLAY_HOURS))
        except StorageError as exc:
            log.warning("candles: views not made from the archive (%s); `cryptoapp candles rebuild` makes them", exc)

    @app.timer(interval=RETENTION_SWEEP_EVERY, on_leader=True)
    async def retention() -> None:
        """crypto.candles keeps each resolution as long as schema.CANDLE_RETENTION_DAYS says; the archive keeps its
        ticks CRYPTO_ARCHIVE_DAYS if set (candles and views keep their bars)."""
        try:
            removed = await app.store.candles.trim_candles(retention_starts(time.time()))
            if settings.archive_days:
                cutoff = dt.datetime.now(UTC) - dt.timedelta(days=settings.archive_days)
                ticks = await app.store.ticks.delete_ticks_before(cutoff)
                if ticks:
                    log.info("archive retention: %d ticks older than %g days removed", ticks, settings.archive_days)
        except StorageError as exc:
            log.warning("retention skipped this time: %s", exc)
            return
        if removed:
            log.info("candle retention: %d candles past their resolution's retention removed", removed)
