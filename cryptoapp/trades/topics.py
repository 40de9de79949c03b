"""The trade candles' table, declared next to the app (Faust's layout); crypto-trades itself is the app's topic."""

from __future__ import annotations

from cryptoapp.app import CHANGELOG_SEGMENT_MS, app

trade_minutes = app.Table(
    "trade_minutes", key_type=str, partitions=app.settings.partitions,
    extra_topic_configs={"segment.ms": str(CHANGELOG_SEGMENT_MS)},
    help="Series@minute -> its trade bar so far and the trade ids counted in it (cryptoapp.trades.bars.new_minute).")
