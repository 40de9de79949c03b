"""The Faust app: broker, topics and the latest_prices table, declared once; `main()` is the console script."""

from __future__ import annotations

import logging
import sys

import faust

from cryptoapp.prices.models import PriceTick
from cryptoapp.settings import ConfigError, apply_flags, settings

log = logging.getLogger(__name__)

app = faust.App(
    settings.app_id,
    broker=settings.kafka_broker,
    autodiscover=True,
    origin="cryptoapp",
    store="memory://",  # the table is rebuilt from its changelog topic at start-up
    datadir=settings.datadir,
    topic_partitions=settings.partitions,
    consumer_auto_offset_reset="earliest",  # a new consumer group reads every tick already in Kafka
    producer_acks=-1,
    web_port=settings.web_port,
    web_bind=settings.web_bind,
    web_host=settings.web_bind,
)

# Keys are tickers serialized as the table serializes its keys (JSON strings), so a ticker's stream
# partition, its changelog partition and table_route's choice of worker all agree. Values stay raw
# bytes: the agents parse them, so a message that is not a PriceTick can go to the dead-letter topic.
prices_topic = app.topic(settings.topic, key_type=str, value_type=bytes, value_serializer="raw",
                         partitions=settings.partitions, internal=True)
dead_letters = app.topic(settings.dlq_topic, key_type=bytes, key_serializer="raw",
                         value_type=bytes, value_serializer="raw", partitions=1, internal=True)

latest_prices = app.Table(
    "latest_prices",
    key_type=str,
    value_type=PriceTick,
    partitions=settings.partitions,
    help="Ticker -> its newest PriceTick (by source timestamp); restored from the changelog on restart.",
)


def main() -> None:
    """`cryptoapp worker -l info [--symbols ...] [--interval S] [--mongo-uri URI]`."""
    try:
        sys.argv[1:] = apply_flags(settings, sys.argv[1:])
    except ConfigError as exc:
        sys.exit(f"cryptoapp: {exc}")
    app.main()
