"""Threshold rules with hysteresis: on past one level, off again past another.

The rule remembers only whether it last asked for on. After a restart it
starts from off (the outputs' safe state), so a valve that was open stays shut
until the level is under `on_below` again: a restart never opens anything
that no reading asks for.
"""

from __future__ import annotations

from smartanom.control.config import ThresholdConfig


class ThresholdRule:
    def __init__(self, config: ThresholdConfig):
        self.config = config
        self.on = False

    def wanted(self, reading: tuple[float, float] | None, now: float) -> tuple[bool, str]:
        c = self.config
        if reading is None or now - reading[1] > c.stale_after:
            self.on = False
            return False, f"sensor {c.sensor} has no reading within {c.stale_after:g} s"
        value = reading[0]
        if c.on_below is not None:
            if value < c.on_below:
                self.on = True
            elif value >= c.off_above:
                self.on = False
            edge = f"on below {c.on_below:g}, off at {c.off_above:g}"
        else:
            if value > c.on_above:
                self.on = True
            elif value <= c.off_below:
                self.on = False
            edge = f"on above {c.on_above:g}, off at {c.off_below:g}"
        return self.on, f"sensor {c.sensor} = {value:g} ({edge})"
