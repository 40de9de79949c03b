"""Log throttling: a line is logged at most once per interval per key, with a count of the ones held back."""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from typing import Callable, Hashable, Optional

REPEATED_CLIENT_LINES_EVERY = 30.0  # seconds between two same aiokafka complaints


@dataclasses.dataclass(frozen=True)
class Passed:
    """A key let through: how many times it was held back since it last passed, and how long ago that was."""

    dropped: int
    since: float  # seconds; infinite the first time

    def note(self, template: str = " ({dropped} more like it in the last {since:.0f} s)") -> str:
        """`template` filled in with the count and the seconds, or "" when nothing was held back."""
        return template.format(dropped=self.dropped, since=self.since) if self.dropped else ""


class Throttle:
    """Lets each key through at most once per `every` seconds and counts the times it held it back.

    `check(key)` returns a Passed when the caller should log now, else None (and counts one more held back);
    `mark(key)` records a line logged elsewhere, so the next one waits a full interval.
    """

    def __init__(self, every: float, clock: Callable[[], float] = time.monotonic):
        self.every = every
        self.clock = clock
        self._seen: dict[Hashable, tuple[float, int]] = {}  # key -> (last let through, held back since)

    def check(self, key: Hashable = None) -> Optional[Passed]:
        now = self.clock()
        last, dropped = self._seen.get(key, (-math.inf, 0))
        if now - last < self.every:
            self._seen[key] = (last, dropped + 1)
            return None
        self._seen[key] = (now, 0)
        return Passed(dropped, now - last)

    def mark(self, key: Hashable = None) -> None:
        self._seen[key] = (self.clock(), 0)

    def warn(self, logger: logging.Logger, key: Hashable, message: str) -> None:
        """`message` logged as a warning when `key` passes, with how many more like it were held back."""
        passed = self.check(key)
        if passed is not None:
            logger.warning("%s%s", message, passed.note())


class RepeatedClientLines(logging.Filter):
    """Lets an aiokafka line through once per interval: it retries every 100 ms while a broker is down
    and would write ten lines a second; the first line and a count of the dropped ones are kept."""

    def __init__(self, every: float = REPEATED_CLIENT_LINES_EVERY, clock: Callable[[], float] = time.monotonic):
        super().__init__()
        self.throttle = Throttle(every, clock)

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith("aiokafka") or record.levelno >= logging.CRITICAL:
            return True
        passed = self.throttle.check((record.name, record.levelno, str(record.msg)))
        if passed is None:
            return False
        if passed.dropped:  # the added text holds no %, so the record's own arguments still format
            record.msg = f"{record.msg}{passed.note(' [{dropped} more like this in the last {since:.0f} s]')}"
        return True

    @classmethod
    def install(cls) -> "RepeatedClientLines":
        """One filter on every handler of the root logger (the worker's exist once it started, with -l info)."""
        repeated = cls()
        for handler in logging.getLogger().handlers:
            handler.addFilter(repeated)
        return repeated
