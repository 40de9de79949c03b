"""The agents: fetch prices into Kafka (leader only), sink every tick into MongoDB, keep latest_prices."""

from __future__ import annotations

import logging
import os
import time

from aiolimiter import AsyncLimiter

from cryptoapp.app import app, dead_letters, latest_prices, prices_topic
from cryptoapp.coins import resolve_all
from cryptoapp.prices.models import InvalidTick, PriceTick, decode_tick
from cryptoapp.settings import settings
from cryptoapp.sources import make_source
from cryptoapp.sources.backfill import backfill_at_start_up
from cryptoapp.storage import PriceStore

log = logging.getLogger(__name__)

BATCH_SIZE = 500
BATCH_WINDOW = 0.2  # seconds a partial batch waits: bounds the added latency; full batches go at once
SHUTDOWN_GRACE = 10.0

coins = resolve_all(settings.symbols)
# The request budget (calls per minute) is shared by everything that calls the price API.
request_budget = AsyncLimiter(settings.requests_per_minute, 60)
source = app.service(make_source(settings, coins, request_budget))
store = app.service(PriceStore(settings.mongo_uri, settings.mongo_db))


async def publish(ticks: list[PriceTick]) -> None:
    """Send ticks to the prices topic keyed by ticker; returns once Kafka acknowledged them all."""
    pending = [await prices_topic.send(key=t.ticker, value=t.encode()) for t in ticks]
    for fut in pending:
        await fut


# Faust's timer sleeps a full interval before its first run; ticking at most every second and polling
# when due gives the first prices a second after start instead of a minute.
_next_poll = 0.0


@app.timer(interval=min(1.0, settings.interval), on_leader=True)
async def fetch_prices() -> None:
    """One poll of the price source for all coins; runs on the leader only, so workers never multiply calls."""
    global _next_poll
    now = time.monotonic()
    if now < _next_poll:
        return
    # Keep the cadence (no drift) unless a poll ran late, then count from now.
    _next_poll = _next_poll + settings.interval if _next_poll + settings.interval > now else now + settings.interval
    ticks = await source.fetch()
    if ticks:
        await publish(ticks)


@app.task(on_leader=True)
async def backfill_history() -> None:
    """Fills the gaps of the last CRYPTO_BACKFILL_HOURS once at start-up, in a task of its own so live
    polls keep their cadence meanwhile; leader only, like them."""
    await store.maybe_start()  # app tasks start before app services; a no-op when the app got there first
    await backfill_at_start_up(settings, coins, store, publish, request_budget)


async def dead_letter(event, reason: str) -> None:
    """Park a message that is not a PriceTick, with the reason and its original bytes; the stream goes on."""
    message = event.message
    log.warning("poison message at %s[%d]@%d sent to %s: %s", message.topic, message.partition,
                message.offset, dead_letters.get_topic_name(), reason)
    await dead_letters.send(
        key=message.key, value=message.value,
        headers={"reason": reason.encode(), "topic": message.topic.encode(),
                 "partition": str(message.partition).encode(), "offset": str(message.offset).encode()})


@app.agent(prices_topic, concurrency=1)
async def store_ticks(stream):
    """Batches the stream into bulk upserts; a batch's offsets are acked only after it is written.

    Concurrency stays 1: with more, Faust can commit past a batch still in flight.
    """
    async for events in stream.take_events(BATCH_SIZE, within=BATCH_WINDOW):
        ticks = []
        for event in events:
            try:
                ticks.append(decode_tick(event.value))
            except InvalidTick as exc:
                await dead_letter(event, str(exc))
        if not ticks:
            continue
        try:
            await store.upsert_until_stored(ticks)
        except BaseException:
            # Stopping mid-retry: Faust acks the batch as the loop unwinds, so write it now or never
            # let that ack be committed (Kafka redelivers it to the next worker).
            if not await store.flush_on_shutdown(ticks, SHUTDOWN_GRACE):
                log.critical("stopping with %d unwritten ticks and MongoDB unreachable: exiting without "
                             "committing their offsets; they are re-read from Kafka on restart", len(ticks))
                os._exit(70)
            raise


@app.agent(prices_topic)
async def track_latest(stream):
    """latest_prices[ticker] = the newest tick by source time; older or invalid ticks change nothing."""
    async for raw in stream:
        try:
            tick = decode_tick(raw)
        except InvalidTick:
            continue  # store_ticks sends it to the dead-letter topic
        if tick.is_newer_than(latest_prices.get(tick.ticker)):
            latest_prices[tick.ticker] = tick
