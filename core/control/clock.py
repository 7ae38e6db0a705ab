"""Time for the control loop, given rather than taken (STYLE 14).

Everything in `smartanom.control` that waits (the control period, a dosing
pulse, a mixing time, an override's expiry) asks a `Clock`. The hub runs on
`SystemClock`; tests run on `SimulatedClock`, whose `advance()` moves time and
wakes the sleepers in order, so a day of dosing runs in well under a second.

Two times: `now()` is the wall clock (schedules, records), which can jump on a
Pi without a real-time clock when NTP corrects it; `monotonic()` only ever moves
forward by the time that really passed, and is what waits use. The dosing
limits count with both (docs/control.md, "Clock jumps").
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time


class SystemClock:
    """Wall-clock time for schedules and records, the loop's sleep for waiting."""

    def now(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


class SimulatedClock:
    """A clock that moves only when a test calls `advance()`."""

    def __init__(self, start: float):
        self._now = float(start)
        self._mono = 0.0
        self._sleepers: list[tuple[float, int, asyncio.Future]] = []
        self._order = itertools.count()

    def now(self) -> float:
        return self._now

    def monotonic(self) -> float:
        return self._mono

    def jump(self, seconds: float) -> None:
        """Set the wall clock forward (or back, if negative) without time passing: NTP on a Pi without RTC."""
        self._now += seconds

    async def sleep(self, seconds: float) -> None:
        # Sleepers wake on monotonic time, as asyncio's do: a wall-clock jump wakes nobody.
        future = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self._mono + max(0.0, seconds), next(self._order), future))
        await future

    async def advance(self, seconds: float) -> None:
        """Move time forward by `seconds`, waking each sleeper at its own deadline."""
        end = self._mono + seconds
        while True:
            await _settle()
            if not self._sleepers or self._sleepers[0][0] > end:
                break
            when, _, future = heapq.heappop(self._sleepers)
            if when > self._mono:
                self._now += when - self._mono
                self._mono = when
            if not future.done():
                future.set_result(None)
        self._now += end - self._mono
        self._mono = end
        await _settle()


async def _settle() -> None:
    # Let every task that was woken run up to its next wait. Nothing in the
    # control loop awaits real I/O, so a few loop turns are enough.
    for _ in range(8):
        await asyncio.sleep(0)
