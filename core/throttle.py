"""Logging at most once a minute: the one helper for every rate-limited log line.

A flapping cable, a client retrying in a loop or a sensor out of range must be
visible in the log without flooding it. `LogThrottle.allow(key)` says whether to
log now, for each key on its own (a topic, a sensor, an origin), and counts the
lines it held back so that the next one can say how many.
"""

from __future__ import annotations

import time
from typing import Callable, Hashable

# The usual period: the first occurrence at once, then at most one line a minute.
EVERY_MINUTE = 60.0


class LogThrottle:
    """`if throttle.allow(key): log.warning(...)`, at most once per `every` seconds per key.

    After `allow` returned True, `skipped` is how many calls for that key it
    refused since the previous True. `clock` is a monotonic clock, so tests can
    drive time; `max_keys` bounds memory when keys come from outside (origins).
    """

    def __init__(self, every: float = EVERY_MINUTE, *, clock: Callable[[], float] = time.monotonic, max_keys: int = 1000):
        self.every = every
        self.skipped = 0
        self._clock = clock
        self._max_keys = max_keys
        self._next: dict[Hashable, float] = {}
        self._held: dict[Hashable, int] = {}

    def allow(self, key: Hashable = None) -> bool:
        now = self._clock()
        if key in self._next and now < self._next[key]:
            self._held[key] = self._held.get(key, 0) + 1
            return False
        if key not in self._next and len(self._next) >= self._max_keys:
            self._next.clear()  # made-up keys (origins) must not grow memory
            self._held.clear()
        self._next[key] = now + self.every
        self.skipped = self._held.pop(key, 0)
        return True

    def reset(self, key: Hashable = None) -> None:
        """Let the next `allow(key)` through at once (e.g. a failure after a recovery)."""
        self._next.pop(key, None)
        self._held.pop(key, None)
