"""The price timers: fetch prices into Kafka (leader only) and run the exchange stream (leader only). The one agent
that reads the prices topic is the pipeline's (cryptoapp/pipeline.py)."""

from __future__ import annotations

import time

from cryptoapp.app import app, latest_prices

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
