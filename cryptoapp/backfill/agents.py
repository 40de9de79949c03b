"""The start-up backfill: a leader-only task that fills the gaps of the last CRYPTO_BACKFILL_HOURS once."""

from __future__ import annotations

import asyncio
import logging

from cryptoapp.app import app
from cryptoapp.backfill.history import HistoryBackfill
from cryptoapp.schema import COINGECKO
from cryptoapp.sources.coingecko import CoinGeckoClient
from cryptoapp.storage import StorageError

log = logging.getLogger(__name__)


@app.task(on_leader=True)
async def backfill_history() -> None:
    """In a task of its own, so live polls keep their cadence meanwhile; leader only, like them. Problems are
    logged, never raised: live polling never depends on the backfill."""
    settings = app.settings
    if COINGECKO not in settings.sources:
        log.info("no backfill: CRYPTO_SOURCES=%s has no history to fetch (only %s has)", ",".join(settings.sources),
                 COINGECKO)
        return
    if not settings.backfill_hours:
        log.info("no backfill at start-up (CRYPTO_BACKFILL_HOURS=0); `cryptoapp backfill` fills gaps on demand")
        return
    try:
        # Its calls go through the live source's request budget.
        async with CoinGeckoClient(settings.coingecko_api_url, settings.api_key, app.request_budget,
                                   timeout=settings.coingecko_timeout) as client:
            await HistoryBackfill(app.store, client, app.publish, interval=settings.interval,
                                  requests_per_minute=settings.requests_per_minute).run(app.coins,
                                                                                        settings.backfill_hours)
    except StorageError as exc:
        log.warning("backfill skipped: %s; `cryptoapp backfill` fills the gaps once it answers", exc)
    except asyncio.CancelledError:
        raise
    except Exception:  # a bug: its traceback is worth having, but the worker polls on without history
        log.exception("backfill failed; live polling goes on")
