"""The trade candles' step of a batch of crypto-trades: each message decoded once, the trades grouped by series and
minute, each changed minute written once to its table entry (trades by id: a replay or a redelivery counts once, a
late trade corrects its minute), and every bar it changes at 1m/5m/1h/1d sent to crypto-candles, where the views
agent stores and serves them like any bar (provenance `trades`)."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence

from faust.types import EventT

from cryptoapp.candles.models import Bar, bar_to_json
from cryptoapp.logs import Throttle
from cryptoapp.schema import RESOLUTIONS
from cryptoapp.streams import Decoded, in_partition_of, send_all
from cryptoapp.trades.bars import (
    MINUTE, add_trades, group_by_minute, merge_bars, minute_bar, minute_key, new_minute, parents)
from cryptoapp.trades.models import InvalidTrade, Trade, decode_trade
from cryptoapp.trades.topics import trade_minutes

log = logging.getLogger(__name__)
CLOSE_EVERY = 5.0  # seconds between two looks for open bars that have closed
EVICT_EVERY = 60.0  # seconds between two sweeps of minutes past CRYPTO_CANDLES_HOURS


class TradeStage:
    """The open trade bars of this worker's partitions: the table holds the minutes, this object their bars."""

    def __init__(self, app, candles_topic):
        self.app = app
        self.candles_topic = candles_topic
        self._bars = Decoded(trade_minutes, minute_bar)  # minute key -> its bar
        self._open: dict[tuple[str, str, int], Bar] = {}  # bars sent while open: sent again once closed
        self._reports = Throttle(60.0)
        self.unreadable = 0
        self._held: dict[str, set[int]] | None = None  # series -> the minute starts the table holds (for eviction)
        self._last_event: dict[str, EventT] = {}  # series -> an event of its partition, where its deletes go
        self._evicted_at = 0.0
        self._hours: dict[tuple[str, int], Bar | None] = {}  # (series, hour start) -> its bar from the minutes

    def forget(self) -> None:
        self._bars.clear()
        self._open.clear()
        self._held = None
        self._last_event.clear()
        self._hours.clear()

    def _index(self) -> dict[str, set[int]]:
        if self._held is None:  # after a start or a rebalance: what the restored table holds
            self._held = {}
            for key in list(trade_minutes.keys()):
                series, _, minute = key.rpartition("@")
                self._held.setdefault(series, set()).add(int(minute) * MINUTE)
        return self._held

    def _evict(self, now: float) -> None:
        """Drops the minutes older than CRYPTO_CANDLES_HOURS from the table (a trade that old is left out anyway)."""
        oldest = now - self.app.settings.candles_hours * 3600
        for series, starts in self._index().items():
            event = self._last_event.get(series)
            old = [start for start in starts if start + MINUTE <= oldest]
            if event is None or not old:
                continue  # without an event of its partition since the start, at the series' next trade
            with in_partition_of(event):
                for start in old:
                    self._bars.delete(minute_key(series, start))
                    self._hours.pop((series, start // 3600 * 3600), None)
                    starts.discard(start)

    def _minute(self, key: str) -> Bar | None:
        return self._bars.get(key)

    def bar_at(self, series: str, resolution: str, start_s: int) -> Bar | None:
        """The bar from the minutes held; a day merges its hours (cached: every batch makes the hours it changed
        afresh before their day), so a day costs 24 merges, not 1,440 minute lookups."""
        if resolution == "1m":
            return self._minute(minute_key(series, start_s))
        if resolution == "1d":
            children = [bar for s in range(start_s, start_s + RESOLUTIONS["1d"], RESOLUTIONS["1h"])
                        if (bar := self._hour(series, s)) is not None]
        else:
            children = [bar for s in range(start_s, start_s + RESOLUTIONS[resolution], MINUTE)
                        if (bar := self._minute(minute_key(series, s))) is not None]
        bar = merge_bars(children, resolution) if children else None
        if resolution == "1h":
            self._hours[(series, start_s)] = bar
        return bar

    def _hour(self, series: str, start_s: int) -> Bar | None:
        at = (series, start_s)
        return self._hours[at] if at in self._hours else self.bar_at(series, "1h", start_s)

    def _group(self, events: Sequence[EventT], oldest: float) -> dict[str, list[tuple[EventT, Trade]]]:
        """The batch's trades, decoded once, by minute key (bars.group_by_minute)."""
        decoded = []
        too_old = 0
        for event in events:
            try:
                trade = decode_trade(event.value)
            except InvalidTrade as exc:
                self.unreadable += 1
                passed = self._reports.check("unreadable")
                if passed is not None:
                    log.warning("trade candles: skipped an unreadable message at %s[%d]@%d (%s)%s",
                                event.message.topic, event.message.partition, event.message.offset, exc, passed.note())
                continue
            if trade.time_ms / 1000 < oldest:
                too_old += 1
                continue
            decoded.append((event, trade))
        if too_old:
            log.warning("trade candles: %d trades older than CRYPTO_CANDLES_HOURS were left out", too_old)
        return group_by_minute(decoded, trade_of=lambda pair: pair[1])

    async def feed(self, events: Sequence[EventT]) -> None:
        """One batch of crypto-trades into the minutes and every bar they change (one update per series and minute)."""
        settings = self.app.settings
        now = time.time()
        grace = settings.candle_grace_s
        changed: list[tuple[str, int]] = []
        for key, group in self._group(events, now - settings.candles_hours * 3600).items():
            event, first = group[-1][0], group[0][1]
            trades = [(t.id, t.time_ms, t.price, t.amount) for _, t in group]
            raw = trade_minutes.get(key)
            minute = {**raw, "ids": [list(r) for r in raw["ids"]]} if raw else new_minute(
                first.series, first.ticker, first.currency, first.time_ms // 1000 // MINUTE * MINUTE)
            if add_trades(minute, trades):
                with in_partition_of(event):
                    trade_minutes[key] = minute
                changed.append((first.series, minute["start_s"]))
                self._index().setdefault(first.series, set()).add(minute["start_s"])
                self._last_event[first.series] = event
        touched = {(series, "1m", start) for series, start in changed}
        touched |= {(series, res, s) for series, start in changed for res, s in parents(start).items()}
        out = []
        # Finest first: a day merges the hours this batch made afresh.
        for series, res, start in sorted(touched, key=lambda at: (at[0], RESOLUTIONS[at[1]], at[2])):
            bar = self.bar_at(series, res, start)
            if bar is None:
                continue
            closed = bar.end.timestamp() + grace <= now
            out.append((bar, closed))
            if closed:
                self._open.pop((series, res, start), None)
            else:
                self._open[(series, res, start)] = bar
        await self.app.producer.buffer.flush()
        await self._send(out)

    async def close_due(self) -> None:
        """Sends the open bars sent before, now closed (a quiet series' last bars close too)."""
        now = time.time()
        if now - self._evicted_at > EVICT_EVERY:
            self._evicted_at = now
            self._evict(now)
        grace = self.app.settings.candle_grace_s
        due = [at for at, bar in self._open.items() if bar.end.timestamp() + grace <= now]
        out = []
        for at in due:
            del self._open[at]
            bar = self.bar_at(*at)
            if bar is not None:
                out.append((bar, True))
        await self._send(out)

    async def _send(self, out: list[tuple[Bar, bool]]) -> None:
        await send_all((self.candles_topic, bar.ticker.encode(), json.dumps(bar_to_json(bar, closed)).encode())
                       for bar, closed in out)
