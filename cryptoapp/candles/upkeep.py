"""The candles' timed upkeep, run by the leader: the clock that closes quiet coins' bars, the views made once from an
archive that has none, and retention (the pipeline declares them when the candles are on)."""

from __future__ import annotations

import datetime as dt
import logging
import time

from cryptoapp.candles.archive import rebuild, retention_starts
from cryptoapp.candles.topics import REPLAY_HOURS, clock_topic, replay
from cryptoapp.schema import UTC
from cryptoapp.storage import StorageError
from cryptoapp.streams import send_all

log = logging.getLogger(__name__)

CLOCK_EVERY = 5.0                         # seconds between two clock messages per coin
RETENTION_SWEEP_EVERY = 3600.0            # seconds between two retention sweeps (candles, CRYPTO_ARCHIVE_DAYS)


async def tell_the_time(app) -> None:
    """Tells every partition the time, so the bars of a quiet coin close too, whichever worker holds it (the leader
    only: one clock)."""
    stamp = str(time.time()).encode()
    await send_all((clock_topic, b"clock", stamp, p) for p in range(app.settings.partitions))


async def views_from_archive(app) -> None:
    """An archive without views (stored before candles existed) gets its candles and views made once, at start-up,
    so the first page shows its history without waiting for new ticks."""
    try:
        if await app.store.candles.has_views() or not await app.store.ticks.has_ticks():
            return
        log.warning("candles: the archive holds ticks but there are no views: making them from the archive once "
                    "(`cryptoapp candles rebuild` does the same); the page fills when it is done")
        await rebuild(app.store, grace_s=app.settings.candle_grace_s, replay=replay,
                      replay_since=dt.datetime.now(UTC) - dt.timedelta(hours=REPLAY_HOURS))
    except StorageError as exc:
        log.warning("candles: views not made from the archive (%s); `cryptoapp candles rebuild` makes them", exc)


async def retention(app) -> None:
    """crypto.candles keeps each resolution as long as schema.CANDLE_RETENTION_DAYS says; the archive keeps its ticks
    CRYPTO_ARCHIVE_DAYS if set (candles and views keep their bars)."""
    settings = app.settings
    try:
        removed = await app.store.candles.trim_candles(retention_starts(time.time()))
        if settings.archive_days:
            cutoff = dt.datetime.now(UTC) - dt.timedelta(days=settings.archive_days)
            ticks = await app.store.ticks.delete_ticks_before(cutoff)
            if ticks:
                log.info("archive retention: %d ticks older than %g days removed", ticks, settings.archive_days)
    except StorageError as exc:
        log.warning("retention skipped this time: %s", exc)
        return
    if removed:
        log.info("candle retention: %d candles past their resolution's retention removed", removed)
