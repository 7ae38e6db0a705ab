"""The signal: a bounded random walk. Pure computation, no I/O, easy to test."""

import random


class RandomWalk:
    def __init__(self, start: float, step: float, low: float, high: float, seed: int | None = None):
        self.value = start
        self.step = step
        self.low = low
        self.high = high
        self._rng = random.Random(seed)

    def next(self) -> float:
        moved = self.value + self._rng.uniform(-self.step, self.step)
        self.value = min(max(moved, self.low), self.high)
        return round(self.value, 3)
