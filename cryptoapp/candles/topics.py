"""The candles' topics and tables, declared next to the app (Faust's layout): agents and commands import them here."""

from __future__ import annotations

from cryptoapp.app import CHANGELOG_SEGMENT_MS, app
from cryptoapp.prices.models import PriceTick
from cryptoapp.streams import send_all

settings = app.settings
REPLAY_HOURS = 26.0  # stored ticks a rebuild replays to the open bars: a day and its grace


def raw_topic(*names: str, declare: bool = True):
    """A topic of raw bytes (the agents parse, so a bad message is theirs to park); declare: this app creates it."""
    return app.topic(*names, key_type=bytes, key_serializer="raw", value_type=bytes, value_serializer="raw",
                     partitions=settings.partitions, internal=declare)


candles_topic = raw_topic(settings.candles_topic)
# Ticks for the candles only, never archived: what `cryptoapp candles rebuild` reads back from the archive for a
# running worker's open bars (a worker started on an archive it never saw).
replay_topic = raw_topic(settings.candle_replay_topic)
clock_topic = raw_topic(settings.candle_clock_topic)
# The sink's stored ticks, a message per series and batch, for the views (rings of recent ticks, crypto.latest).
view_ticks_topic = raw_topic(settings.view_ticks_topic)

candle_minutes = app.Table(
    "candle_minutes", key_type=str, partitions=settings.partitions,
    extra_topic_configs={"segment.ms": str(CHANGELOG_SEGMENT_MS)},
    help="Series@minute -> the ticks of that minute (cryptoapp.candles.bars.Minute), held CRYPTO_CANDLES_HOURS.")
candle_marks = app.Table(
    "candle_marks", key_type=str, partitions=settings.partitions,
    extra_topic_configs={"segment.ms": str(CHANGELOG_SEGMENT_MS)},
    help="Series -> how far its bars are closed, compacted and evicted (Unix seconds per resolution).")



async def replay(ticks: list[PriceTick]) -> None:
    """Stored ticks to the candles agent alone (never archived again): open bars learn what they never saw."""
    await send_all((replay_topic, t.ticker.encode(), t.encode()) for t in ticks)
