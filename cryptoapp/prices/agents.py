"""The price agents: fetch prices into Kafka (leader only), sink every tick into MongoDB, keep latest_prices."""

from __future__ import annotations

import asyncio
import logging
import time

from tenacity import AsyncRetrying, retry_if_exception_type, wait_exponential_jitter

from cryptoapp.app import app, dead_letters, latest_prices, prices_topic
from cryptoapp.prices.models import InvalidTick, decode_tick
from cryptoapp.schema import replaces
from cryptoapp.streams import written_before_commit

log = logging.getLogger(__name__)

BATCH_SIZE = 500
BATCH_WINDOW = 0.2  # seconds a partial batch waits: bounds the added latency; full batches go at once
DLQ_SEND_TIMEOUT = 30.0  # per try: Faust's producer waits up to 20 min for a broker before it fails

# Faust's timer sleeps a full interval before its first run; ticking at most every second and polling
# when due gives the first prices a second after start instead of a minute.
_next_poll = 0.0


@app.timer(interval=min(1.0, app.settings.interval), on_leader=True)
async def fetch_prices() -> None:
    """One poll of the price source for all coins; runs on the leader only, so workers never multiply calls."""
    global _next_poll
    now = time.monotonic()
    if now < _next_poll or app.should_stop:  # a stopping worker no longer reads its topic: publish no more
        return
    # Keep the cadence (no drift) unless a poll ran late, then count from now.
    interval = app.settings.interval
    _next_poll = _next_poll + interval if _next_poll + interval > now else now + interval
    source = app.source
    remember = getattr(source, "remember", None)
    if remember is not None:
        # The jump filter compares with the last price; after a restart that is in the restored table.
        remember({t: tick.value for t, tick in latest_prices.items() if tick.source == source.name})
    # Polls faster than the source refreshes (CoinGecko: about once a minute) repeat its last answer; an
    # observation latest_prices already holds is not published again (each would cost the sink a read).
    ticks = [tick for tick in await source.fetch() if not tick.same_observation(latest_prices.get(tick.ticker))]
    if ticks:
        await app.publish(ticks)


async def dead_letter(event, reason: str) -> None:
    """Park a message that cannot become a stored tick, with the reason and its original bytes.

    Retried until Kafka acknowledges it: the message's offset is committed with its batch.
    """
    message = event.message
    log.warning("poison message at %s[%d]@%d sent to %s: %s", message.topic, message.partition,
                message.offset, dead_letters.get_topic_name(), reason)
    async for attempt in AsyncRetrying(
        retry=retry_if_exception_type(Exception), wait=wait_exponential_jitter(multiplier=0.5, max=10),
        before_sleep=lambda state: log.warning("dead-letter topic unreachable (%r); retry %d in %.1f s",
                                               state.outcome.exception(), state.attempt_number,
                                               state.upcoming_sleep),
    ):
        with attempt:
            async with asyncio.timeout(DLQ_SEND_TIMEOUT):
                sent = await dead_letters.send(
                    key=message.key, value=message.value,
                    headers={"reason": reason.encode(), "topic": message.topic.encode(),
                             "partition": str(message.partition).encode(), "offset": str(message.offset).encode()})
                await sent


async def store_batch(events) -> None:
    """Writes a batch's ticks and parks its poison messages; returns once all of it is safe."""
    decoded, poison = [], []
    for event in events:
        try:
            decoded.append((event, decode_tick(event.value)))
        except InvalidTick as exc:
            poison.append((event, str(exc)))
        except Exception as exc:  # a message the parser did not foresee is still poison, not a crash
            poison.append((event, f"unreadable ({exc.__class__.__name__}: {exc})"))
    while decoded:
        result = await app.store.upsert_until_stored([tick for _, tick in decoded])
        # The store keeps one tick of each _id (schema.replaces); when that one is refused, the others with the
        # same _id were not written either and get their own try.
        kept: dict[str, tuple] = {}
        for event, tick in decoded:
            held = kept.get(tick.tick_id)
            if held is None or replaces(tick.granularity, held[1].granularity):
                kept[tick.tick_id] = (event, tick)
        last = {tick_id: event for tick_id, (event, _) in kept.items()}
        poison += [(last[tick_id], reason) for tick_id, reason in result.rejected.items()]
        decoded = [(event, tick) for event, tick in decoded
                   if tick.tick_id in result.rejected and event is not last[tick.tick_id]]
    for event, reason in poison:
        await dead_letter(event, reason)


@app.agent(prices_topic, concurrency=1)
async def store_ticks(stream):
    """Batches the stream into bulk writes; a batch's offsets are acked only after it is written.

    Concurrency stays 1: with more, Faust can commit past a batch still in flight.
    """
    async for events in stream.take_events(BATCH_SIZE, within=BATCH_WINDOW):
        await written_before_commit(app, events, store_batch, "the sink")


@app.agent(prices_topic)
async def track_latest(stream):
    """latest_prices[ticker] = the newest tick by source time; older or invalid ticks change nothing."""
    async for raw in stream:
        try:
            tick = decode_tick(raw)
        except Exception:  # store_ticks parks it in the dead-letter topic; raising here would stall the stream
            continue
        if tick.is_newer_than(latest_prices.get(tick.ticker)):
            latest_prices[tick.ticker] = tick
