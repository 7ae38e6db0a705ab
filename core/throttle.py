"""How often a repeated log line may be written: the first time, then at most once per period.

Used wherever a client, a probe or the OS can make the same thing happen many
times a second (refused connections, accept errors, a failing health probe),
so that an unattended hub's log stays readable and its SD card intact.
"""

from __future__ import annotations

import time
from typing import Callable


class Throttle:
    def __init__(self, every: float = 60.0, clock: Callable[[], float] = time.monotonic):
        self.every = every
        self.clock = clock
        self.skipped = 0  # times `ready` said no since it last said yes
        self._next = float("-inf")

    def ready(self) -> bool:
        """True if the line may be written now (then `skipped` is how many were held back before it)."""
        now = self.clock()
        if now < self._next:
            self.skipped += 1
            return False
        self._next = now + self.every
        return True

    def take_skipped(self) -> int:
        skipped, self.skipped = self.skipped, 0
        return skipped

    def reset(self) -> None:
        """The next `ready` says yes (a state change is always worth a line)."""
        self._next = float("-inf")
