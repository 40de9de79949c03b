"""The log throttle: a key at most once per interval, with the count of the lines held back."""

import logging

from cryptoapp.logs import RepeatedClientLines, Throttle


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_a_key_passes_once_per_interval_and_says_how_many_were_held_back():
    clock = Clock()
    throttle = Throttle(60.0, clock)
    first = throttle.check("publish")
    assert first is not None and first.dropped == 0 and first.note() == ""
    clock.now += 10
    assert throttle.check("publish") is None
    assert throttle.check("publish") is None
    assert throttle.check("malformed") is not None  # each key on its own
    clock.now += 50
    again = throttle.check("publish")
    assert (again.dropped, again.since) == (2, 60.0)
    assert again.note() == " (2 more like it in the last 60 s)"


def test_a_marked_key_waits_a_full_interval():
    clock = Clock()
    throttle = Throttle(30.0, clock)
    throttle.mark()
    clock.now += 29
    assert throttle.check() is None
    clock.now += 1
    assert throttle.check() is not None


def test_repeated_client_lines_keep_the_first_and_count_the_rest():
    clock = Clock()
    repeated = RepeatedClientLines(every=3600, clock=clock)

    def record(name="aiokafka.conn", level=logging.ERROR):
        return logging.LogRecord(name, level, __file__, 1, "Unable connect to %r", ("localhost:9092",), None)

    assert repeated.filter(record())
    assert not repeated.filter(record())
    assert repeated.filter(record(level=logging.CRITICAL))
    assert repeated.filter(record(name="cryptoapp.app"))
    clock.now += 3600
    again = record()
    assert repeated.filter(again)
    assert again.getMessage() == "Unable connect to 'localhost:9092' [1 more like this in the last 3600 s]"
