"""The candles' steps of a batch: the sink's stored ticks into minute bars held in a changelog-backed table, every bar
they change at 1m/5m/1h/1d sent to crypto-candles, the ticks to the views; and, on the views agent's batch, closed
bars into crypto.candles and every bar and tick into the serving views. The per-partition caches live on the two
objects here, which the app's pipeline owns.

Faust's windowed tables are avoided on purpose (shared/reference/services.md): a window closes only when a later
event for its table arrives (faust-streaming issue 250), windowed state was reported lost on restart (issue 514)
and multi-partition closing misbehaves (issue 172). A plain table keyed by minute, restored from its changelog,
plus a clock topic that a leader timer feeds on every partition (so each partition's owner hears the time even
when its coins are quiet) has none of these: tests/integration/test_candles.py proves each.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence

from faust.types import EventT

from cryptoapp.candles.bars import COMPACT_AFTER_S, MINUTE, Minute, fold, grew, merge, minute_key, parents
from cryptoapp.candles.models import Bar, bar_from_json, bar_to_json, time_ms
from cryptoapp.candles.rings import RING_NUMBERS
from cryptoapp.candles.serving import ViewWriter
from cryptoapp.candles.topics import candle_marks, candle_minutes, candles_topic, clock_topic, view_ticks_topic
from cryptoapp.prices.models import PriceTick, decode_tick, tick_from_json
from cryptoapp.schema import RESOLUTIONS, TICK_NUMBERS
from cryptoapp.streams import Decoded, in_partition_of, send_all

log = logging.getLogger(__name__)


def _new_mark(ticker: str, start_s: int, partition: int) -> dict:
    return {"ticker": ticker, "partition": partition, "compacted": start_s, "evicted": start_s,
            "closed": {res: start_s // seconds * seconds for res, seconds in RESOLUTIONS.items()}}


class CandleStage:
    """The open minute bars of this worker's partitions: the table holds them, this object their parsed copies."""

    def __init__(self, app):
        self.app = app
        # Parsed minute bars, by key, with the table value they were parsed from: a 1d bar merges up to 1,440 minutes.
        self._bars = Decoded(candle_minutes, lambda raw: Minute.from_json(raw).bar())  # minute key -> its bar
        # The 5m/1h/1d bars made so far, by (series, resolution, start): a batch folds its changed minutes into them
        # (bars.fold) instead of merging every minute of a day again; made afresh from the minutes when not held.
        self._coarse: dict[tuple[str, str, int], Bar] = {}

    def forget(self) -> None:
        self._bars.clear()
        self._coarse.clear()

    def minute_bar(self, key: str, batch: dict[str, Minute]) -> Bar | None:
        if key in batch:
            return batch[key].bar()
        return self._bars.get(key)

    def bar_at(self, series: str, resolution: str, start_s: int, batch: dict[str, Minute]) -> Bar | None:
        """The bar of `series` at `resolution` starting at `start_s`, from the minutes held (None: no tick in it)."""
        children = [bar for s in range(start_s, start_s + RESOLUTIONS[resolution], MINUTE)
                    if (bar := self.minute_bar(minute_key(series, s), batch)) is not None]
        if not children:
            return None
        return children[0] if resolution == "1m" else merge(children, resolution)

    async def feed(self, ticks: Sequence[tuple[EventT, PriceTick]], extra: Sequence[EventT]) -> None:
        """The sink's stored ticks (event, tick), and the replayed ticks and clocks among `extra`, into the candles:
        each changed minute written once, every bar it changes sent to crypto-candles, each series' new ticks to the
        views; bars closed, compacted and evicted in the partitions whose clock came.

        A bug here is logged and the batch goes on: the archive never waits for its views (verify finds the damage,
        rebuild repairs it).
        """
        try:
            await self._feed(ticks, extra)
        except Exception:
            log.exception("candles: a batch of %d ticks was not added to the candles", len(ticks))

    def _inputs(self, ticks, extra) -> tuple[list[tuple[EventT, PriceTick]], dict[int, EventT]]:
        clocks: dict[int, EventT] = {}
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
        return ticks, clocks

    def _absorb(self, ticks, oldest: float) -> tuple[dict[str, Minute], dict[str, EventT], int]:
        batch: dict[str, Minute] = {}
        changed: dict[str, EventT] = {}
        too_old = 0
        by_trades = self.app.settings.trade_exchanges  # these exchanges' series' bars are made from their trades
        for event, tick in ticks:
            if tick.source in by_trades:
                continue
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
        return batch, changed, too_old

    async def _feed(self, stored: Sequence[tuple[EventT, PriceTick]], extra: Sequence[EventT]) -> None:
        settings = self.app.settings
        now = time.time()
        oldest = now - settings.candles_hours * 3600
        grace = settings.candle_grace_s
        ticks, clocks = self._inputs(stored, extra)
        batch, changed, too_old = self._absorb(ticks, oldest)
        before = {key: self.minute_bar(key, {}) for key in changed}  # the table still holds the batch's start
        for key, event in changed.items():
            with in_partition_of(event):
                candle_minutes[key] = batch[key].to_json()
        out = [(bar, bar.end.timestamp() + grace <= now) for bar in self._changed_bars(batch, before)]
        for partition, event in clocks.items():
            out += self.close_due(partition, event, now, grace, oldest)
        # The table writes wait in Faust's producer buffer; sending them now keeps a burst (a backfill, the demo's
        # history) from filling it, which Faust reports as a warning per batch and answers by pausing every stream.
        await self.app.producer.buffer.flush()
        await send_all((candles_topic, bar.ticker.encode(), json.dumps(bar_to_json(bar, closed)).encode())
                       for bar, closed in out)
        await send_all(view_ticks(tick for _, tick in stored))
        if too_old:
            log.warning("candles: %d ticks older than CRYPTO_CANDLES_HOURS=%g were left out of the candles (still "
                        "archived); `cryptoapp candles rebuild --hours ...` adds them", too_old, settings.candles_hours)

    def _changed_bars(self, batch: dict[str, Minute], before: dict[str, Bar | None]) -> list[Bar]:
        """Every bar the batch's changed minutes are in, once each: the minute itself, and each coarser bar folded
        from its held copy (or merged afresh from its minutes when not held, or when a minute did not only grow)."""
        coarse: dict[tuple[str, str, int], Bar | None] = {}
        minutes: list[Bar] = []
        for key in sorted(before, key=lambda k: batch[k].start_s):
            new, old = batch[key].bar(), before[key]
            minutes.append(new)
            for res, start in parents(batch[key].start_s).items():
                if res == "1m":
                    continue
                at = (new.series, res, start)
                held = coarse[at] if at in coarse else self._coarse.get(at)
                coarse[at] = fold(held, old, new) if held is not None and grew(old, new) else None
        for at, bar in coarse.items():
            if bar is None:
                bar = self.bar_at(at[0], at[1], at[2], batch)
            self._coarse[at] = bar
        return sorted((*minutes, *(self._coarse[at] for at in coarse)), key=lambda b: (b.series, b.resolution, b.start))

    def close_due(self, partition: int, event: EventT, now: float, grace: float,
                  oldest: float) -> list[tuple[Bar, bool]]:
        """For every series of `partition`: the bars that ended over `grace` ago, closed; old minutes compacted, then
        dropped past the horizon."""
        out = []
        for series, mark in [(s, m) for s, m in candle_marks.items() if m["partition"] == partition]:
            mark = {**mark, "closed": dict(mark["closed"])}
            for res, seconds in RESOLUTIONS.items():
                start = mark["closed"][res]
                while start + seconds + grace <= now:
                    # The held bar is the merge of its minutes (folded exactly); closed, a late tick merges it afresh.
                    bar = self._coarse.pop((series, res, start), None) or self.bar_at(series, res, start, {})
                    if bar is not None:
                        out.append((bar, True))
                    start += seconds
                mark["closed"][res] = start
            for at in [at for at in self._coarse if at[0] == series and at[2] + RESOLUTIONS[at[1]] + grace <= now]:
                del self._coarse[at]  # a closed bar a late tick brought back: the next one merges it afresh
            with in_partition_of(event):
                self._compact_and_evict(series, mark, now, oldest)
                candle_marks[series] = mark
        return out

    def _compact_and_evict(self, series: str, mark: dict, now: float, oldest: float) -> None:
        for start in range(mark["compacted"], int(min(now - COMPACT_AFTER_S, mark["closed"]["1m"])), MINUTE):
            key = minute_key(series, start)
            raw = candle_minutes.get(key)
            if raw is not None and len(raw["ticks"]) > 4:
                minute = Minute.from_json(raw)
                minute.compact()
                candle_minutes[key] = minute.to_json()
            mark["compacted"] = start + MINUTE
        for start in range(mark["evicted"], int(oldest) // MINUTE * MINUTE, MINUTE):
            self._bars.delete(minute_key(series, start))
            mark["evicted"] = start + MINUTE


def view_ticks(ticks) -> list[tuple]:
    """The batch's stored ticks as view-ticks messages, one per series, for the rings of recent ticks and
    crypto.latest: the ticks as columns (time in ms, source, granularity, each number), and the newest in full."""
    by_series: dict[str, list[PriceTick]] = {}
    for tick in ticks:
        by_series.setdefault(tick.series, []).append(tick)
    return [(view_ticks_topic, group[0].ticker.encode(), json.dumps(tick_columns(series, group)).encode())
            for series, group in by_series.items()]


def tick_columns(series: str, group: list[PriceTick]) -> dict:
    newest = group[0]
    for tick in group:
        if tick.is_newer_than(newest):
            newest = tick
    return {"series": series, "ticker": newest.ticker, "currency": newest.currency, "latest": newest.to_json(),
            "t": [time_ms(t.timestamp) for t in group], "source": [t.source for t in group],
            "granularity": [t.granularity for t in group],
            **{name: [getattr(t, name) for t in group] for name in TICK_NUMBERS}}


def tick_rows(data: dict) -> list[tuple]:
    """A view-ticks message's columns as the rows ViewWriter.put_rows takes (TickRing.add_values' arguments)."""
    return list(zip(data["t"], zip(*(data[name] for name in RING_NUMBERS)), data["source"], data["granularity"]))


class ViewStage:
    """The serving views this worker writes (the rings of its series, cached), on the app's store."""

    def __init__(self, app):
        self.app = app
        self._writer: ViewWriter | None = None

    @property
    def writer(self) -> ViewWriter:
        if self._writer is None or self._writer.store is not self.app.store.candles:  # a test may give the app another store
            self._writer = ViewWriter(self.app.store.candles)
        return self._writer

    def forget(self) -> None:
        self.writer.forget()  # the series may move to another worker: the next write here reloads what it needs

    async def write(self, events: Sequence[EventT]) -> None:
        """Closed bars into crypto.candles; every bar, the ticks and the newest tick per series into the views."""
        bars: dict[str, tuple[Bar, bool]] = {}
        messages: dict[str, list[dict]] = {}  # series -> its view-ticks messages
        for event in events:
            data = json.loads(event.value)
            if event.message.topic == candles_topic.get_topic_name():
                bar, closed = bar_from_json(data)
                bars[bar.id] = (bar, closed or bars.get(bar.id, (bar, False))[1])
                continue
            if isinstance(data, list):  # the form before columns, still in the topic after an upgrade
                ticks = [tick_from_json(item) for item in data]
                data = tick_columns(ticks[0].series, ticks)
            messages.setdefault(data["series"], []).append(data)
        store = self.app.store
        await store.candles.store_candles(bar for bar, closed in bars.values() if closed)
        await self.writer.put_bars(bar for bar, _ in bars.values())
        for series, group in messages.items():
            rows = [row for data in group for row in tick_rows(data)]
            await self.writer.put_rows(series, group[0]["ticker"], group[0]["currency"], rows[0][2], rows)
        await store.ticks.save_latest(tick_from_json(data["latest"]) for group in messages.values() for data in group)
