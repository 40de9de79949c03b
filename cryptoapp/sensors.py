"""Faust's Prometheus metrics at /metrics, counted cheaply: the per-message and per-event hooks only add to plain
counters, which go into the Prometheus metrics (the same `faust_*` names) when /metrics is read. Faust's own
sensor does a labelled Prometheus update per message, per event and per table read, 12.5 % of the sink's event
loop (docs/benchmarks.md); CRYPTO_FAUST_EVENT_METRICS=1 puts it back, with its per-event runtime histogram."""

from __future__ import annotations

from collections import Counter
from time import monotonic
from typing import Any, Optional

from aiohttp.web import Response
from faust.sensors.prometheus import FaustMetrics, PrometheusMonitor, setup_prometheus_sensors
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

NAME_PREFIX = "faust"


class BatchedMonitor(PrometheusMonitor):
    """Faust's Prometheus sensor with its hot hooks reduced to counting; `flush()` hands the counts over."""

    def __init__(self, metrics: FaustMetrics, **kwargs: Any) -> None:
        super().__init__(metrics=metrics, **kwargs)
        self._received: Counter = Counter()         # topic -> messages
        self._read_offsets: dict = {}               # tp -> the newest offset read
        self._events: Counter = Counter()           # stream -> events
        self._table_ops: Counter = Counter()        # (table name, operation) -> count
        self._messages_active = 0
        self._events_active = 0

    def on_message_in(self, tp, offset: int, message) -> None:
        self._received[tp.topic] += 1
        self._read_offsets[tp] = offset
        self._messages_active += 1

    def on_message_out(self, tp, offset: int, message) -> None:
        self._messages_active -= 1

    def on_stream_event_in(self, tp, offset: int, stream, event) -> Optional[dict]:
        self.stream_inbound_time[tp] = monotonic()  # Faust's slow-stream check reads it (aiokafka driver)
        self._events[stream] += 1
        self._events_active += 1
        return None

    def on_stream_event_out(self, tp, offset: int, stream, event, state: Optional[dict] = None) -> None:
        self._events_active -= 1

    def on_table_get(self, table, key) -> None:
        self._table_ops[(table.name, self.KEYS_RETRIEVED)] += 1

    def on_table_set(self, table, key, value) -> None:
        self._table_ops[(table.name, self.KEYS_UPDATED)] += 1

    def on_table_del(self, table, key) -> None:
        self._table_ops[(table.name, self.KEYS_DELETED)] += 1

    def flush(self) -> None:
        """The counts since the last flush into the Prometheus metrics Faust's own sensor keeps."""
        m = self._metrics
        received, self._received = self._received, Counter()
        m.messages_received.inc(sum(received.values()))
        for topic, count in received.items():
            m.messages_received_per_topics.labels(topic=topic).inc(count)
        for tp, offset in self._read_offsets.items():
            m.messages_received_per_topics_partition.labels(topic=tp.topic, partition=tp.partition).set(offset)
        events, self._events = self._events, Counter()
        m.total_events.inc(sum(events.values()))
        for stream, count in events.items():
            m.total_events_per_stream.labels(stream=f"stream.{self._stream_label(stream)}.events").inc(count)
        m.active_messages.set(self._messages_active)
        m.total_active_events.set(self._events_active)
        ops, self._table_ops = self._table_ops, Counter()
        for (table, operation), count in ops.items():
            m.table_operations.labels(table=f"table.{table}", operation=operation).inc(count)


def setup_metrics(app, per_event: bool) -> None:
    """/metrics with Faust's metrics (batched unless `per_event`) and cryptoapp's (cryptoapp/metrics.py)."""
    if per_event:
        setup_prometheus_sensors(app, pattern="/metrics", name_prefix=NAME_PREFIX)
        return
    monitor = app.monitor = BatchedMonitor(metrics=FaustMetrics.create(REGISTRY, NAME_PREFIX))

    @app.page("/metrics")
    async def metrics(self, request):
        monitor.flush()
        return Response(body=generate_latest(REGISTRY), headers={"Content-Type": CONTENT_TYPE_LATEST}, status=200)
