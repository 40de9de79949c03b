"""The forecasts' topic and state table, declared next to the app (Faust's layout)."""

from __future__ import annotations

from cryptoapp.app import CHANGELOG_SEGMENT_MS, app
from cryptoapp.streams import AwaitedTable, raw_topic

# The closed minutes the views agent relays (a message per coin and batch), read by the forecasting agent alone.
minutes_topic = raw_topic(app, app.settings.forecast_minutes_topic)
forecast_state = app.tables.add(AwaitedTable(
    app, name="forecast_state", beacon=app.tables.beacon, key_type=str, value_type=bytes,  # bytes: stored raw
    partitions=app.settings.partitions, extra_topic_configs={"segment.ms": str(CHANGELOG_SEGMENT_MS)},
    help="Ticker -> its forecasters' state (CoinForecaster.to_bytes: format and River release, then models, queued "
         "forecasts, scores and the last bar taken); read back at start, so a restart goes on where it stopped."))
