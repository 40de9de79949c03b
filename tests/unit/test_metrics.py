"""The /latency/ samples: every recent tick's creation and readable times, the oldest dropped past the limit."""

from cryptoapp import metrics


def test_ring_keeps_the_last_ticks_oldest_first():
    ring = metrics._Ring(3)
    for i in range(5):
        ring.append(float(i), i + 0.5)
    assert ring.pairs() == [(2.0, 2.5), (3.0, 3.5), (4.0, 4.5)]


def test_readable_since_filters_by_creation(monkeypatch):
    monkeypatch.setattr(metrics, "_readable", metrics._Ring(10))
    metrics.batch_written([100.0, 101.0, 102.0], acked_at=103.0)
    assert metrics.readable_since(101.0) == [(101.0, 103.0), (102.0, 103.0)]
