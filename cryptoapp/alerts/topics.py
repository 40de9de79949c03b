"""The alerts' topic and state table, declared next to the app (Faust's layout)."""

from __future__ import annotations

from cryptoapp.app import app
from cryptoapp.streams import raw_topic, state_table

# Firings: key = ticker, value = Firing.to_json() as JSON (raw bytes: store_alerts parses them).
alerts_topic = raw_topic(app, app.settings.alerts_topic)
alert_states = state_table(  # values are JSON objects: the app's default value serializer
    app, "alert_states",
    help="Rule id -> {armed, last_tick_at}; <coin>/<price|volume>/<window s> -> the coin's window (buckets of low "
         "and high, shared by its rules of that length). Written while a tick of the coin is processed, so into "
         "that coin's partition (Faust writes a table's changelog to the current event's partition): the state "
         "moves with the coin when partitions move between workers.",
)
