"""The candles' topics and tables, declared next to the app (Faust's layout): agents and commands import them here."""

from __future__ import annotations

from cryptoapp.app import app
from cryptoapp.prices.models import PriceTick
from cryptoapp.streams import raw_topic, send_all, state_table

settings = app.settings
REPLAY_HOURS = 26.0  # stored ticks a rebuild replays to the open bars: a day and its grace


candles_topic = raw_topic(app, settings.candles_topic)
# Ticks for the candles only, never archived: what `cryptoapp candles rebuild` reads back from the archive for a
# running worker's open bars (a worker started on an archive it never saw).
replay_topic = raw_topic(app, settings.candle_replay_topic)
clock_topic = raw_topic(app, settings.candle_clock_topic)
# The sink's stored ticks, a message per series and batch, for the views (rings of recent ticks, crypto.latest).
view_ticks_topic = raw_topic(app, settings.view_ticks_topic)

candle_minutes = state_table(
    app, "candle_minutes",
    help="Series@minute -> the ticks of that minute (cryptoapp.candles.bars.Minute), held CRYPTO_CANDLES_HOURS.")
candle_marks = state_table(
    app, "candle_marks",
    help="Series -> how far its bars are closed, compacted and evicted (Unix seconds per resolution).")


async def replay(ticks: list[PriceTick]) -> None:
    """Stored ticks to the candles agent alone (never archived again): open bars learn what they never saw."""
    await send_all((replay_topic, t.ticker.encode(), t.encode()) for t in ticks)
