"""The batch's path, top to bottom: what the worker does with each batch of the prices topic, and which stages run
(decided here, once, from the settings). Each stage is a call into its own package (prices, alerts, candles,
forecasts); no stage package imports another, and each stage's per-partition state lives on the objects of
`Stages`, which the app owns (`app.stages`).

    prices topic ─ store_ticks, a batch of ≤ BATCH_SIZE or BATCH_WINDOW s:
        decode once → alerts judged (their firings sent) → archive write (+ dead letters) → latest per series
        → alert states written once Kafka has the firings → candles (minutes, every changed bar → crypto-candles)
    crypto-candles + view ticks ─ store_views, a batch of about a second:
        views (crypto.candles, the rings, crypto.latest) → the closed minutes relayed to the forecasts
    forecast minutes ─ forecast: the forecasters, their documents and state

Offsets follow writes: every agent here hands its batch to streams.written_before_commit, so a committed offset
means its tick is stored. The alerts are judged before the archive write so that Kafka's round trip for the
firings overlaps it; while MongoDB has not answered the rules' read yet, the archive goes first (its retries say
why) and the rules follow it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from faust.types import EventT

from cryptoapp.alerts.stage import AlertStage
from cryptoapp.alerts.topics import alert_states, alerts_topic
from cryptoapp.app import app, dead_letters, latest_prices, trades_topic
from cryptoapp.candles import upkeep
from cryptoapp.candles.stage import CandleStage, ViewStage
from cryptoapp.candles.topics import candles_topic, clock_topic, replay_topic, view_ticks_topic
from cryptoapp.forecasts.stage import (
    FORECAST_BATCH, FORECAST_WINDOW, PRUNE_EVERY, ForecastStage, load_river, relay_minutes)
from cryptoapp.forecasts.topics import minutes_topic
from cryptoapp.metrics import BATCH_MESSAGES, TICKS_CONSUMED, TICKS_STORED, batch_written
from cryptoapp.prices import sink
from cryptoapp.streams import raw_topic, written_before_commit
from cryptoapp.trades.stage import CLOSE_EVERY, TradeStage

settings = app.settings
BATCH_SIZE = 500
BATCH_WINDOW = 0.2  # seconds a partial batch waits: bounds the added latency; full batches go at once
VIEWS_BATCH, VIEWS_WINDOW = 5000, 1.0
TRADES_BATCH = 2000  # a burst's trades per batch: one table write and one bar per series and minute each  # views are saved at most about once a second per series


class Stages:
    """The stages this worker runs, each holding its per-partition state; None where the settings turn it off."""

    def __init__(self, app_):
        s = app_.settings
        self.alerts = AlertStage(app_, alert_states, alerts_topic)
        self.candles = CandleStage(app_) if s.candles else None
        self.views = ViewStage(app_) if s.candles else None
        self.forecasts = ForecastStage(app_) if s.candles and s.forecasts else None
        self.trades = TradeStage(app_, candles_topic) if s.candles and s.trades_on else None

    def forget(self) -> None:
        """Partitions were revoked: what was cached of their series may move on at another worker. (The forecasters
        compare their copy with the table's value on every use, so they need no forgetting.)"""
        for stage in (self.alerts, self.candles, self.views, self.trades):
            if stage is not None:
                stage.forget()


@app.on_partitions_revoked.connect
async def forget_partitions(sender, revoked, **kwargs) -> None:  # noqa: ARG001 (a signal's signature)
    app.stages.forget()


# --- the sink: the prices topic's one reader -------------------------------------------------------------------

async def store_batch(events: Sequence[EventT]) -> None:
    """One batch of the sink, every stage in order; returns once the archive holds every tick of it."""
    stages = app.stages
    candles_only = {replay_topic.get_topic_name(), clock_topic.get_topic_name()}
    prices = [event for event in events if event.message.topic not in candles_only]
    extra = [event for event in events if event.message.topic in candles_only]
    decoded, poison = sink.decode(prices)
    TICKS_CONSUMED.inc(len(prices))
    BATCH_MESSAGES.observe(len(events))
    if app.rulebook.loaded.is_set():
        settle_alerts = await stages.alerts.judge(decoded)  # firings sent; their acknowledgement waited for below
        stored = await sink.archive(app.store.ticks, decoded, poison)
    else:
        stored = await sink.archive(app.store.ticks, decoded, poison)
        settle_alerts = await stages.alerts.judge(decoded)
    TICKS_STORED.inc(len(stored))
    batch_written(tick.fetched_at.timestamp() for _, tick in stored if tick.fetched_at is not None)
    for event, reason in poison:
        await sink.dead_letter(dead_letters, event, reason)
    sink.track_latest(latest_prices, stored)
    await settle_alerts()
    if stages.candles is not None:
        await stages.candles.feed(stored, extra)  # the archive never waits for the candles


# The prices, and for the candles alone the ticks a rebuild replays and the clock that closes quiet coins' bars.
sink_input = raw_topic(app, settings.topic, replay_topic.get_topic_name(), clock_topic.get_topic_name(), declare=False)


@app.agent(sink_input, concurrency=1)
async def store_ticks(stream):
    """Batches the stream into bulk writes; a batch's offsets are acked only after it is written.

    The topic's only reader, so each message is parsed once and counted once by Faust (several agents on one
    topic each hold a reference; one left unacked at a stop held the worker until its watchdog). Concurrency stays
    1: with more, Faust can commit past a batch still in flight.
    """
    async for events in stream.take_events(BATCH_SIZE, within=BATCH_WINDOW):
        await written_before_commit(app, events, store_batch, "the sink")


# --- the views: crypto-candles' one reader, and the forecasts after them ------------------------------------------

async def views_batch(events: Sequence[EventT]) -> None:
    stages = app.stages
    await app.store.until_written(lambda: stages.views.write(events), f"a batch of {len(events)} bars and ticks")
    if stages.forecasts is not None:  # the closed minutes to the forecasting agent's topic
        await relay_minutes(events, candles_topic.get_topic_name())


if settings.candles:
    @app.agent(raw_topic(app, settings.candles_topic, view_ticks_topic.get_topic_name(), declare=False), concurrency=1)
    async def store_views(stream):
        """Batches of about a second into crypto.candles and the views; offsets wait until they are written."""
        async for events in stream.take_events(VIEWS_BATCH, within=VIEWS_WINDOW):
            await written_before_commit(app, events, views_batch, "the views")

    @app.timer(interval=upkeep.CLOCK_EVERY, on_leader=True)
    async def candle_clock() -> None:
        await upkeep.tell_the_time(app)

    @app.task(on_leader=True)
    async def views_from_archive() -> None:
        await upkeep.views_from_archive(app)

    @app.timer(interval=upkeep.RETENTION_SWEEP_EVERY, on_leader=True)
    async def retention() -> None:
        await upkeep.retention(app)


if settings.candles and settings.trades_on:
    @app.agent(trades_topic, concurrency=1)
    async def trade_candles(stream):
        """Batches of crypto-trades into the exchange series' candles; offsets wait until the bars are sent."""
        async for events in stream.take_events(TRADES_BATCH, within=BATCH_WINDOW):
            await written_before_commit(app, events, app.stages.trades.feed, "the trade candles")

    @app.timer(interval=CLOSE_EVERY)
    async def close_trade_bars() -> None:
        await app.stages.trades.close_due()


if settings.candles and settings.forecasts:
    @app.agent(minutes_topic, concurrency=1)
    async def forecast(stream):
        """Batches of relayed closed minutes into the forecasters; a batch's offsets wait until its documents are in
        MongoDB and its state in Kafka. Concurrency 1: each coin's bars are taken in order."""
        async for events in stream.take_events(FORECAST_BATCH, within=FORECAST_WINDOW):
            await written_before_commit(app, events, app.stages.forecasts.feed, "the forecasts")

    @app.task
    async def warm_up() -> None:
        await asyncio.to_thread(load_river)

    @app.timer(interval=PRUNE_EVERY, on_leader=True)
    async def prune_forecasts() -> None:
        await app.stages.forecasts.prune()
