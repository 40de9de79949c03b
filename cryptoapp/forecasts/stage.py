"""The forecasts' step: closed 1-minute bars of CoinGecko's series from crypto-candles into each coin's forecasters,
whose state lives in a changelog-backed table, and their forecasts and scores into MongoDB.

crypto-candles keeps one reader, the views agent (cryptoapp/pipeline.py `store_views`): with a second agent on
it, a SIGTERM left candle messages unacknowledged and the worker exited through its watchdog (exit 70) in 4 stops
of 6 under load, 0 of 6 without (several agents on one topic each hold a reference to every message). The views
agent relays the closed minutes forecasting takes (relay_minutes: the messages' JSON unchanged, one message per
coin and batch, keyed by ticker) to `<app id>-forecast-minutes`, whose one reader is the forecasting agent
(cryptoapp/pipeline.py `forecast`), which hands each batch to ForecastStage.feed here. It has its own
offsets, so the views never wait for forecasting, and its own pace: at most CPU_SHARE of the event loop while bars
wait (a burst of history: the demo's first start, a restart after a day down), so the sink the loop also runs keeps
its speed (bench/forecasts.py); live, one bar per coin a minute costs it well under 1 %.

Which bars: closed ones (a bar still open changes), at 1 minute (the forecasters' step; a horizon of h minutes is
h bars), of CoinGecko's series only (the ticker's own series: CoinGecko, its backfill, or the demo's simulated
source standing in for it). An exchange's series (BTC_binanceus) is left out: every coin has CoinGecko's series,
only some coins are listed on the exchange and only while the leader streams; the forecast documents and the
history chart are per coin, and one model fed both series would learn the gap between two sources as moves.
Bars made of CoinGecko's backfilled history alone are left out too (features.learns_from).

Each batch, in this order, so that a crash anywhere scores nothing twice and loses nothing:
1. each coin's bars, oldest first, into its forecaster in memory: predict, wait h, score, then learn (online.py); a
   bar not newer than the coin's last (a closed bar sent again after a late tick, a redelivery) changes nothing;
2. the forecasts and the scores into MongoDB (forecasts insert-if-absent, scores rewritten in place);
3. each changed coin's state into the table `forecast_state`, in the changelog partition of its newest bar's
   message (the candles topic is keyed by ticker and has the prices topic's partitions, like the table);
4. awaited until Kafka acknowledged those changelog messages; only then does the batch return and its offsets
   become committable (streams.written_before_commit).
A crash before 4 restores the older state and Kafka redelivers the bars: they are scored again to the same values
(the models are deterministic) and their documents written over themselves. A crash after 4 but before the
commit restores the newer state, which skips the redelivered bars (not newer than its last).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import time
from collections.abc import Sequence
from typing import Optional

from faust.types import EventT

from cryptoapp.candles.models import Bar as Candle
from cryptoapp.candles.models import bar_from_json
from cryptoapp.forecasts.documents import forecast_documents, score_documents
from cryptoapp.forecasts.features import InvalidBar, bar_from_candle, learns_from
from cryptoapp.forecasts.online import RESOLUTION, CoinForecaster, restore
from cryptoapp.forecasts.topics import forecast_state, minutes_topic
from cryptoapp.schema import UTC, iso_z
from cryptoapp.storage import StorageError
from cryptoapp.streams import in_partition_of, send_all

log = logging.getLogger(__name__)

# A forecast is kept this long after its target time: the dashboard draws the newest ones; the scores keep the rest.
FORECASTS_KEPT_S = 3600.0
PRUNE_EVERY = 600.0  # seconds between two prunes of crypto.forecasts
FORECAST_BATCH, FORECAST_WINDOW = 100, 2.0  # relayed messages per batch, seconds a partial batch waits
SLICE_BARS = 20  # bars between two pauses: ~10 ms of work, the longest forecasting holds the event loop
CPU_SHARE = 0.05  # of the event loop's time, at most, while bars wait (a burst); live it takes far less


def closed_minute(data: dict) -> Optional[Candle]:
    """The bar of a crypto-candles message (its JSON, read with bar_from_json) when forecasting takes it: closed, at
    1 minute, of CoinGecko's series, and not CoinGecko's backfilled history alone; else None."""
    candle, closed = bar_from_json(data)
    if closed and candle.resolution == RESOLUTION and candle.own_source is None and learns_from(candle.sources):
        return candle
    return None


async def relay_minutes(events: Sequence[EventT], candles_topic: str) -> None:
    """The closed minutes forecasting takes, among a batch of the views agent (crypto-candles' one reader), onto
    minutes_topic: one message per coin and batch, keyed by ticker, holding the candle messages' JSON unchanged (a
    list). Returns once Kafka has them, so the views' offsets go after."""
    by_ticker: dict[str, list[bytes]] = {}
    for event in events:
        # Most messages are other resolutions or open bars: a closed minute's JSON holds "1m" and true however it is
        # spaced, so the rest is passed over without parsing it.
        if event.message.topic != candles_topic or b'"1m"' not in event.value or b"true" not in event.value:
            continue
        try:
            candle = closed_minute(json.loads(event.value))
        except Exception as exc:  # the views agent has read the same message: a bug, not the user's
            log.warning("forecasts: an unreadable candle at %s[%d]@%d was skipped (%s)", event.message.topic,
                        event.message.partition, event.message.offset, exc)
            continue
        if candle is not None:
            by_ticker.setdefault(candle.ticker, []).append(event.value)
    await send_all((minutes_topic, ticker.encode(), b"[" + b",".join(values) + b"]")
                   for ticker, values in by_ticker.items())


def closed_minutes(events: Sequence[EventT]) -> dict[str, list[tuple[EventT, Candle]]]:
    """The bars of a batch of relayed messages (minutes_topic), by ticker, oldest first, each with its message."""
    by_ticker: dict[str, list[tuple[EventT, Candle]]] = {}
    for event in events:
        try:
            candles = [closed_minute(data) for data in json.loads(event.value)]
        except Exception as exc:  # only relay_minutes writes this topic: a bug, not the user's
            log.warning("forecasts: an unreadable message at %s[%d]@%d was skipped (%s)", event.message.topic,
                        event.message.partition, event.message.offset, exc)
            continue
        for candle in candles:
            if candle is not None:
                by_ticker.setdefault(candle.ticker, []).append((event, candle))
    for bars in by_ticker.values():
        bars.sort(key=lambda pair: pair[1].start)  # stable: of two messages of one bar, the later one last
    return by_ticker


def load_river() -> None:
    """River (with NumPy and SciPy), which the first model needs: ~0.7 s and ~85 MB, imported ahead in a thread so
    the first bar does not hold the event loop (forecasters.py imports it lazily, for a worker with forecasts off)."""
    from river import linear_model, optim, preprocessing, time_series  # noqa: F401


class ForecastStage:
    """The forecasters this worker holds, by ticker, and what a batch produced and has not yet made safe (kept
    across a retry of the batch, so a retry finishes the job)."""

    def __init__(self, app):
        self.app = app
        # ticker -> (the table value its forecaster was read from or last written as, the forecaster)
        self._forecasters: dict[str, tuple[Optional[bytes], CoinForecaster]] = {}
        self._dirty: dict[str, EventT] = {}  # ticker -> the message of its newest bar taken: state newer than the table's
        self._unwritten: dict[str, dict] = {}  # forecast documents by _id
        self._unwritten_scores: dict[str, dict] = {}

    def forecaster(self, ticker: str) -> CoinForecaster:
        """`ticker`'s forecaster: the one held while the table holds what it was read from or last written as (or while
        it is newer, mid-batch), else read from the table (or new). Comparing with the table's value is what keeps a
        coin that went to another worker and came back from going on from a stale copy."""
        settings = self.app.settings
        raw = forecast_state.get(ticker)
        held = self._forecasters.get(ticker)
        if held is not None and (ticker in self._dirty or held[0] is raw or held[0] == raw):
            return held[1]
        state = restore(raw, ticker, settings.forecast_horizons, settings.forecast_models, settings.forecast_window)
        if held is None:  # once per coin and process (and after a rebalance): where its forecasts go on from
            log.info("forecasts of %s: %s", ticker, f"state read back: {state.bars:,} bars taken, the last of "
                     f"{iso_z(state.last_start)}" if state.last_start else
                     "no state yet: the models start with the next bar")
        self._forecasters[ticker] = (raw, state)
        return state

    async def feed(self, events: Sequence[EventT]) -> None:
        """A batch of relayed closed minutes into the forecasters; returns once its forecasts and scores are in MongoDB
        and the new state is in Kafka (module docstring). A bug in one coin's forecasters is logged and that coin's
        batch is dropped from memory (its table state stays the last good one); the other coins go on."""
        keep_from = dt.datetime.now(UTC) - dt.timedelta(seconds=FORECASTS_KEPT_S)
        pace = _Pace(self.app)
        for ticker, bars in closed_minutes(events).items():
            try:
                await self._take(ticker, bars, keep_from, pace)
            except Exception:
                log.exception("forecasts of %s: a batch of %d bars failed; they are dropped from memory and the state "
                              "goes on from the table's", ticker, len(bars))
                self._forecasters.pop(ticker, None)
                self._dirty.pop(ticker, None)
        await self._documents_written()
        await self._state_written()

    async def _take(self, ticker: str, bars: list[tuple[EventT, Candle]], keep_from: dt.datetime, pace) -> None:
        state = self.forecaster(ticker)
        accepted = False
        for event, candle in bars:
            try:
                outcome = state.update(bar_from_candle(candle))
            except InvalidBar as exc:
                log.warning("forecasts: %s; the bar was skipped", exc)
                continue
            if not outcome.accepted:
                continue
            accepted = True
            self._dirty[ticker] = event
            # Forecasts whose target is long past (history, a replay) would be pruned at once: not written.
            for doc in forecast_documents(f for f in outcome.forecasts if f.target_at >= keep_from):
                self._unwritten[doc["_id"]] = doc
            await pace.took_one()
        if accepted:
            for doc in score_documents(state.score_rows()):
                self._unwritten_scores[doc["_id"]] = doc

    async def _documents_written(self) -> None:
        if not (self._unwritten or self._unwritten_scores):
            return
        store = self.app.store

        async def write() -> None:
            if self._unwritten:
                await store.forecasts.write_forecasts(list(self._unwritten.values()))
                self._unwritten.clear()
            if self._unwritten_scores:
                await store.forecasts.write_forecast_scores(list(self._unwritten_scores.values()))
                self._unwritten_scores.clear()

        await store.until_written(write, f"{len(self._unwritten)} forecasts and "
                                         f"{len(self._unwritten_scores)} forecast scores")

    async def _state_written(self) -> None:
        if not self._dirty:
            return
        for ticker, event in self._dirty.items():
            raw = self._forecasters[ticker][1].to_bytes()
            with in_partition_of(event):
                forecast_state[ticker] = raw
            self._forecasters[ticker] = (raw, self._forecasters[ticker][1])
        await forecast_state.written()
        self._dirty.clear()

    async def prune(self) -> None:
        """crypto.forecasts keeps each forecast FORECASTS_KEPT_S past its target: bounded (FerretDB reads the whole
        collection for a query), and the newest forecasts, which the dashboard draws, are always there."""
        before = dt.datetime.now(UTC) - dt.timedelta(seconds=FORECASTS_KEPT_S)
        started = time.perf_counter()
        try:
            removed = await self.app.store.forecasts.prune_forecasts(before)
        except StorageError as exc:
            log.warning("forecasts: old forecasts not pruned this time: %s", exc)
            return
        if removed:
            log.info("forecasts: %d forecasts more than %g h past their target removed in %.0f ms", removed,
                     FORECASTS_KEPT_S / 3600, (time.perf_counter() - started) * 1000)


class _Pace:
    """Every SLICE_BARS bars, leaves the event loop to the rest for long enough that forecasting stays within
    CPU_SHARE of it; not once the worker stops (its batch has SHUTDOWN_GRACE to finish)."""

    def __init__(self, app):
        self.app = app
        self.taken = 0
        self.started = time.perf_counter()

    async def took_one(self) -> None:
        self.taken += 1
        if self.taken % SLICE_BARS:
            return
        worked = time.perf_counter() - self.started
        await asyncio.sleep(0 if self.app.should_stop else worked * (1 - CPU_SHARE) / CPU_SHARE)
        self.started = time.perf_counter()
