"""The signal model: slow drift, a day/night cycle and a little noise per sensor type.

Pure computation, no I/O: `Simulator.sample(t)` gives the next value of each
sensor for wall-clock time `t`. The same seed and the same times give the same
values, so runs are reproducible.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass


@dataclass(frozen=True)
class Profile:
    low: float          # values stay within [low, high]
    high: float
    mean: float         # where drift pulls back to
    drift: float        # random-walk step per sample, as a fraction of the range
    cycle: float        # day/night amplitude, as a fraction of the range
    peak_hour: float    # hour of the simulated day when the cycle peaks
    noise: float        # sample noise, as a fraction of the range
    digits: int


PROFILES: dict[str, Profile] = {
    "water_temperature": Profile(20, 30, 23.5, 0.004, 0.10, 16, 0.002, 2),
    "temperature": Profile(20, 30, 24.0, 0.004, 0.12, 15, 0.002, 2),
    "air_temperature": Profile(18, 32, 24.0, 0.004, 0.20, 15, 0.004, 2),
    "humidity": Profile(60, 80, 70.0, 0.006, 0.18, 4, 0.005, 1),
    "ph": Profile(5.5, 7.5, 6.2, 0.003, 0.04, 14, 0.004, 2),
    "ec": Profile(1.0, 2.5, 1.6, 0.003, 0.03, 14, 0.003, 2),
    "tds": Profile(500, 1500, 850, 0.003, 0.03, 14, 0.003, 0),
    "water_level": Profile(10, 50, 35.0, 0.002, 0.08, 18, 0.002, 1),
    "turbidity": Profile(0, 40, 5.0, 0.005, 0.02, 12, 0.01, 1),
    # Usually derived by the hub; these are for meters that report them.
    "vpd": Profile(0.4, 1.6, 0.9, 0.004, 0.15, 15, 0.005, 2),
    "dli": Profile(5, 30, 15.0, 0.002, 0.01, 12, 0.002, 1),
}
# Light sensors peak at these values while the grow lights are on.
LIGHT_PEAK = {"light": (16000.0, 3000.0, 150.0, 20000.0), "ppfd": (600.0, 100.0, 5.0, 1000.0)}


class SensorSignal:
    def __init__(self, sensor_type: str, rng: random.Random, day_length: float):
        self.type = sensor_type
        self.rng = rng
        self.day_length = day_length
        self.profile = PROFILES.get(sensor_type)
        p = self.profile
        self.offset = 0.0 if p is None else rng.uniform(-0.05, 0.05) * (p.high - p.low)

    def value(self, t: float) -> float:
        phase = (t % self.day_length) / self.day_length  # 0 = midnight
        if self.type in LIGHT_PEAK:
            return self._light(phase)
        p = self.profile
        span = p.high - p.low
        # Mean-reverting random walk: drifts slowly, never runs off.
        self.offset += self.rng.gauss(0, p.drift * span) - 0.01 * self.offset
        cycle = p.cycle * span * math.cos(2 * math.pi * (phase - p.peak_hour / 24))
        value = p.mean + self.offset + cycle + self.rng.gauss(0, p.noise * span)
        return round(min(max(value, p.low), p.high), p.digits)

    def _light(self, phase: float) -> float:
        # Grow lights on from 06:00 to 22:00 with a soft ramp; dark otherwise.
        hour = phase * 24
        if not 6 <= hour <= 22:
            return 0.0
        base, swing, noise, top = LIGHT_PEAK[self.type]
        ramp = min(1.0, (hour - 6) / 0.5, (22 - hour) / 0.5)
        value = ramp * (base + swing * math.sin(math.pi * (hour - 6) / 16)) + self.rng.gauss(0, noise)
        return round(min(max(value, 0.0), top))


class Simulator:
    def __init__(self, sensors: list[tuple[int, str]], seed: int | None = None, day_length: float = 86400.0):
        rng = random.Random(seed)
        # One generator per sensor, seeded from the first, so adding a sensor
        # does not change the others' sequences.
        self.signals = [(sid, SensorSignal(stype, random.Random(rng.random() + sid), day_length)) for sid, stype in sensors]

    def sample(self, t: float) -> list[tuple[int, float]]:
        return [(sid, signal.value(t)) for sid, signal in self.signals]
