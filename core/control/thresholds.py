"""Threshold rules with hysteresis: on past one level, off again past another.

The rule remembers whether it last asked for on, and for how long it has been
on since the sensor last read its off level. Past `max_on` it trips: off, and
it stays off until the sensor reads the off level (so the sensor is seen to
move) or someone overrides the output by hand (`reset`). A hub restart also
re-arms it, like a manual reset.

After a restart it starts from off (the outputs' safe state), so a valve that
was open stays shut until the level is under `on_below` again: a restart never
opens anything that no reading asks for.
"""

from __future__ import annotations

import logging

from smartanom.control.config import ThresholdConfig

log = logging.getLogger("smartanom.control")


class ThresholdRule:
    def __init__(self, config: ThresholdConfig):
        self.config = config
        self.on = False
        self.on_seconds = 0.0  # on-time since the sensor last read the off level
        self.tripped: str | None = None
        self._last: float | None = None

    def reset(self) -> None:
        """A manual override re-arms a tripped rule and starts its on-time again."""
        self.on_seconds = 0.0
        self.tripped = None

    def wanted(self, reading: tuple[float, float] | None, now: float) -> tuple[bool, str]:
        c = self.config
        if self.on and self._last is not None:
            self.on_seconds += max(0.0, now - self._last)
        self._last = now
        if reading is None or now - reading[1] > c.stale_after:
            self.on = False
            return False, f"sensor {c.sensor} has no reading within {c.stale_after:g} s"
        value = reading[0]
        if c.on_below is not None:
            at_off_level = value >= c.off_above
            wants_on = value < c.on_below
            edge = f"on below {c.on_below:g}, off at {c.off_above:g}"
            off_level = f">= {c.off_above:g}"
        else:
            at_off_level = value <= c.off_below
            wants_on = value > c.on_above
            edge = f"on above {c.on_above:g}, off at {c.off_below:g}"
            off_level = f"<= {c.off_below:g}"
        if at_off_level:
            self.on = False
            self.on_seconds = 0.0
            if self.tripped:
                log.info("Rule for %s re-armed: sensor %s = %g reached its off level", c.output, c.sensor, value)
                self.tripped = None
        elif wants_on:
            self.on = True
        if self.tripped:
            self.on = False
            return False, self.tripped
        if self.on and c.max_on is not None and self.on_seconds >= c.max_on:
            self.on = False
            self.tripped = (
                f"max_on: on for {self.on_seconds:.0f} s (limit {c.max_on:g} s) and sensor {c.sensor} = {value:g} "
                f"never reached {off_level}; off until it does or the output is overridden by hand"
            )
            log.warning("Rule for %s tripped: %s", c.output, self.tripped)
            return False, self.tripped
        return self.on, f"sensor {c.sensor} = {value:g} ({edge})"
