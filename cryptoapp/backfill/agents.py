"""The start-up backfill: a leader-only task that fills the gaps of the last CRYPTO_BACKFILL_HOURS once."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging

from cryptoapp.app import app
from cryptoapp.backfill.history import HistoryBackfill, find_gaps, ticks_in
from cryptoapp.schema import COINGECKO, SIMULATED, UTC
from cryptoapp.sources.coingecko import CoinGeckoClient
from cryptoapp.storage import StorageError

log = logging.getLogger(__name__)


@app.task(on_leader=True)
async def backfill_history() -> None:
    """In a task of its own, so live polls keep their cadence meanwhile; leader only, like them. Problems are
    logged, never raised: live polling never depends on the backfill."""
    settings = app.settings
    if not settings.backfill_hours:
        log.info("no backfill at start-up (CRYPTO_BACKFILL_HOURS=0); `cryptoapp backfill` fills gaps on demand")
        return
    if SIMULATED in settings.sources:
        await _simulated_history(settings.backfill_hours)
        return
    if COINGECKO not in settings.sources:
        log.info("no backfill: CRYPTO_SOURCES=%s has no history to fetch (only %s has)", ",".join(settings.sources),
                 COINGECKO)
        return
    try:
        # Its calls go through the live source's request budget.
        async with CoinGeckoClient(settings.coingecko_api_url, settings.api_key, app.request_budget,
                                   timeout=settings.coingecko_timeout) as client:
            await HistoryBackfill(app.store.ticks, client, app.publish, interval=settings.interval,
                                  requests_per_minute=settings.requests_per_minute,
                                  progress=app.backfill_progress).run(app.coins,
                                                                                        settings.backfill_hours)
    except StorageError as exc:
        log.warning("backfill skipped: %s; `cryptoapp backfill` fills the gaps once it answers", exc)
    except asyncio.CancelledError:
        raise
    except Exception:  # a bug: its traceback is worth having, but the worker polls on without history
        log.exception("backfill failed; live polling goes on")


async def _simulated_history(hours: float) -> None:
    """The demo's history: the gaps of the last `hours` filled with the simulated source's own walk, every tick
    labelled simulated, so `make demo` opens on a week of candles instead of an empty chart."""
    end = dt.datetime.now(UTC).replace(microsecond=0)
    start = end - dt.timedelta(hours=hours)
    history = app.source.history(start, end)
    published = 0
    try:
        for coin in app.coins:
            gaps = find_gaps(await app.store.ticks.stored_times(coin.ticker, start), start, end, app.settings.interval)
            filling = ticks_in([t for t in history if t.ticker == coin.ticker], gaps)
            for first in range(0, len(filling), 1000):
                await app.publish(filling[first:first + 1000])
            published += len(filling)
    except StorageError as exc:
        log.warning("simulated history skipped: %s", exc)
        return
    app.backfill_progress.update(state="done", source="simulated", ticks=published, finished_at=dt.datetime.now(UTC))
    log.info("simulated history: %d simulated ticks published for the last %g h of %s", published, hours,
             ", ".join(c.ticker for c in app.coins))
