"""The latest value of every sensor, and whether it is fresh enough to compute with.

EC compensation and derived sensors read other sensors' values; they must never
use old data, so each value is kept with the monotonic time it arrived.
"""

from __future__ import annotations

import time
from typing import Callable

from smartanom.events import SensorReading


class LatestReadings:
    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self.clock = clock
        self._values: dict[int, tuple[float, float]] = {}  # sensor id -> (value, arrived)

    def attach(self, bus) -> Callable[[], None]:
        return bus.subscribe(SensorReading, self.record)

    def record(self, reading: SensorReading) -> None:
        self._values[reading.sensor.id] = (reading.value, self.clock())

    def fresh(self, sensor_id: int, max_age: float) -> float | None:
        """The sensor's latest value if it arrived within `max_age` seconds, else None."""
        entry = self._values.get(sensor_id)
        if entry is None or self.clock() - entry[1] > max_age:
            return None
        return entry[0]

    def age(self, sensor_id: int) -> float | None:
        entry = self._values.get(sensor_id)
        return None if entry is None else self.clock() - entry[1]
