"""The price agents: fetch prices into Kafka (leader only), run the exchange stream (leader only), and the one agent
that reads the prices topic: each batch parsed once, written to the archive, latest_prices updated once per series
(CoinGecko's and an exchange's never overwrite each other), the candles fed."""

from __future__ import annotations

import asyncio
import logging
import time

from tenacity import AsyncRetrying, retry_if_exception_type, wait_exponential_jitter

from cryptoapp.alerts.agents import evaluate_alerts
from cryptoapp.app import app, dead_letters, latest_prices
from cryptoapp.candles.agents import feed_candles
from cryptoapp.candles.topics import clock_topic, raw_topic, replay_topic
from cryptoapp.metrics import BATCH_MESSAGES, DEAD_LETTERS, TICKS_CONSUMED, TICKS_STORED, WRITE_SECONDS, batch_written
from cryptoapp.prices.models import InvalidTick, decode_tick
from cryptoapp.schema import one_tick_per_id
from cryptoapp.streams import in_partition_of, written_before_commit

log = logging.getLogger(__name__)

BATCH_SIZE = 500
BATCH_WINDOW = 0.2  # seconds a partial batch waits: bounds the added latency; full batches go at once
DLQ_SEND_TIMEOUT = 30.0  # per try: Faust's producer waits up to 20 min for a broker before it fails
LEADERSHIP_CHECK_EVERY = 1.0  # seconds: how soon a new leader starts the exchange stream

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
    if source is None:  # CRYPTO_SOURCES has only the exchange, which pushes its own ticks
        return
    remember = getattr(source, "remember", None)
    if remember is not None:
        # The jump filter compares with the last price; after a restart that is in the restored table.
        remember({tick.ticker: tick.value for tick in latest_prices.values() if tick.source == source.name})
    # Polls faster than the source refreshes (CoinGecko: about once a minute) repeat its last answer; an
    # observation latest_prices already holds (in the source's own series) is not published again (each
    # would cost the sink a read).
    ticks = [tick for tick in await source.fetch() if not tick.same_observation(latest_prices.get(tick.series))]
    if ticks:
        await app.publish(ticks)


@app.timer(interval=LEADERSHIP_CHECK_EVERY)
async def follow_leadership() -> None:
    """Starts the exchange stream when this worker becomes the leader, stops it when it no longer is.

    On every worker, not `on_leader=True`: such a timer skips its runs where it does not lead, so it could
    never stop a stream on a worker that lost the lead; and an `app.task(on_leader=True)` is decided once at
    start-up, so a worker that becomes the leader later (the old one died) would never stream.
    """
    await app.follow_leadership()


@app.on_partitions_revoked.connect
async def stop_streaming_on_rebalance(sender, revoked, **kwargs) -> None:
    """A rebalance may hand the lead to another worker: the stream stops before this worker's revocation
    completes, so it is never open on two workers at once; follow_leadership restarts it on the leader once
    the partitions are assigned again (a gap of about a second and a reconnect per rebalance)."""
    await app.follow_leadership(leading=False)


async def dead_letter(event, reason: str) -> None:
    """Park a message that cannot become a stored tick, with the reason and its original bytes.

    Retried until Kafka acknowledges it: the message's offset is committed with its batch.
    """
    message = event.message
    DEAD_LETTERS.inc()
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
    """One batch of the sink: the alerts judged, ticks into the archive and their poison into the dead-letter topic
    (returns once all of it is safe), then latest_prices once per series, the alert states, then the candles
    (which the archive never waits for)."""
    candles_only = {replay_topic.get_topic_name(), clock_topic.get_topic_name()}
    prices, extra = [], []
    for event in events:
        (extra if event.message.topic in candles_only else prices).append(event)
    decoded, poison = [], []
    for event in prices:
        try:
            decoded.append((event, decode_tick(event.value)))
        except InvalidTick as exc:
            poison.append((event, str(exc)))
        except Exception as exc:  # a message the parser did not foresee is still poison, not a crash
            poison.append((event, f"unreadable ({exc.__class__.__name__}: {exc})"))
    TICKS_CONSUMED.inc(len(prices))
    BATCH_MESSAGES.observe(len(events))
    if app.rulebook.loaded.is_set():
        settle_alerts = await evaluate_alerts(decoded)  # firings sent; their acknowledgement waited for below
        stored = await timed_archive(decoded, poison)
    else:  # MongoDB has not answered the rules' read yet: the archive's retries say why, and the rules follow it
        stored = await timed_archive(decoded, poison)
        settle_alerts = await evaluate_alerts(decoded)
    TICKS_STORED.inc(len(stored))
    batch_written(tick.fetched_at.timestamp() for _, tick in stored if tick.fetched_at is not None)
    for event, reason in poison:
        await dead_letter(event, reason)
    track_latest(stored)
    await settle_alerts()
    if app.settings.candles:
        await feed_candles(stored, extra)


async def timed_archive(decoded: list[tuple], poison: list[tuple]) -> list[tuple]:
    started = time.perf_counter()
    stored = await archive(decoded, poison)
    WRITE_SECONDS.observe(time.perf_counter() - started)
    return stored


async def archive(decoded: list[tuple], poison: list[tuple]) -> list[tuple]:
    """Writes the decoded ticks until stored; those MongoDB refuses join `poison`; returns the stored ones."""
    stored = []
    while decoded:
        result = await app.store.ticks.upsert_until_stored([tick for _, tick in decoded])
        # The store keeps one tick of each _id (schema.one_tick_per_id); when that one is refused, the others with
        # the same _id were not written either and get their own try.
        kept = one_tick_per_id(decoded, tick_of=lambda pair: pair[1])
        last = {tick_id: event for tick_id, (event, _) in kept.items()}
        poison += [(last[tick_id], reason) for tick_id, reason in result.rejected.items()]
        stored += [(event, tick) for event, tick in decoded if tick.tick_id not in result.rejected]
        decoded = [(event, tick) for event, tick in decoded
                   if tick.tick_id in result.rejected and event is not last[tick.tick_id]]
    return stored


def track_latest(ticks: list[tuple]) -> None:
    """latest_prices[series] = the series' newest tick by source time (series: schema.series_id, BTC for CoinGecko,
    BTC_binanceus for an exchange), written once per series per batch; older ticks change nothing.

    Each entry goes to the partition of its tick's message, keyed by ticker, so all series of one coin live in its
    ticker's partition: views route by ticker."""
    newest: dict[str, tuple] = {}
    for event, tick in ticks:
        held = newest.get(tick.series, (None, latest_prices.get(tick.series)))[1]
        if tick.is_newer_than(held):
            newest[tick.series] = (event, tick)
    for series, (event, tick) in newest.items():
        with in_partition_of(event):
            latest_prices[series] = tick


# The prices, and for the candles alone the ticks a rebuild replays and the clock that closes quiet coins' bars.
sink_input = raw_topic(app.settings.topic, replay_topic.get_topic_name(), clock_topic.get_topic_name(), declare=False)


@app.agent(sink_input, concurrency=1)
async def store_ticks(stream):
    """Batches the stream into bulk writes; a batch's offsets are acked only after it is written.

    The topic's only reader, so each message is parsed once and counted once by Faust (several agents on one
    topic each hold a reference; one left unacked at a stop held the worker until its watchdog). Concurrency stays
    1: with more, Faust can commit past a batch still in flight.
    """
    async for events in stream.take_events(BATCH_SIZE, within=BATCH_WINDOW):
        await written_before_commit(app, events, store_batch, "the sink")
