"""The guided calibration of one sensor: standards, one at a time, each recorded once stable.

A session walks through its standards (pH buffers, EC solutions) in order:

    waiting   the grower is told which standard to put the probe in; nothing is recorded
    measuring after "measure", raw readings are collected until they are stable
    unstable  they did not settle within the timeout; "measure" tries again
    saving    the last point is in; the new calibration is being written
    done      applied (the report says how healthy the probe is)
    rejected  the probe is out of the accepted band; nothing was applied
    failed    it could not be saved; nothing was applied
    cancelled by the grower, or left idle too long; nothing was applied

The stability rule: a point is recorded when, at the latest raw reading, the
readings of the last `seconds` (at least MIN_SAMPLES of them, and `seconds` of
measuring) lie within `spread` of each other (or `spread_percent` of their
mean); the point's raw value is their mean. Time comes from the clock the
session is given (the event loop's), so tests drive it.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass, field
from typing import Callable

from smartanom.calibration.fit import Point

MIN_SAMPLES = 3
ACTIVE = ("waiting", "measuring", "unstable", "saving")


@dataclass(frozen=True)
class StabilityRule:
    seconds: float = 10.0
    spread: float | None = None          # raw units
    spread_percent: float | None = None  # of the mean
    timeout: float = 120.0

    def limit(self, mean: float) -> float:
        if self.spread is not None:
            return self.spread
        return abs(mean) * (self.spread_percent if self.spread_percent is not None else 1.0) / 100.0


class Stability:
    """Raw samples of one point, and whether they have settled."""

    def __init__(self, rule: StabilityRule, started: float):
        self.rule = rule
        self.started = started
        self.samples: collections.deque[tuple[float, float]] = collections.deque()

    def add(self, t: float, raw: float) -> float | None:
        """Add a sample; the settled raw value (the window's mean) once the rule is met."""
        self.samples.append((t, raw))
        while self.samples and self.samples[0][0] < t - self.rule.seconds:
            self.samples.popleft()
        if t - self.started < self.rule.seconds or len(self.samples) < MIN_SAMPLES:
            return None
        mean = sum(v for _, v in self.samples) / len(self.samples)
        return mean if self.spread <= self.rule.limit(mean) else None

    def values_since(self, since: float) -> list[float]:
        return [v for t, v in self.samples if t >= since]

    @property
    def spread(self) -> float:
        values = [v for _, v in self.samples]
        return max(values) - min(values) if values else 0.0

    def progress(self, now: float) -> dict:
        mean = sum(v for _, v in self.samples) / len(self.samples) if self.samples else None
        return {
            "seconds": round(now - self.started, 1),
            "samples": len(self.samples),
            "last_raw": self.samples[-1][1] if self.samples else None,
            "spread": self.spread,
            "spread_allowed": None if mean is None else self.rule.limit(mean),
            "window_seconds": self.rule.seconds,
        }


@dataclass
class Session:
    sensor_id: int
    kind: str                 # ph | ec | linear
    standards: list[float]    # reference values, in the order the grower uses them
    unit: str
    rule: StabilityRule
    clock: Callable[[], float]
    temperature: float = 25.0  # of the standards, C (the pH report's Nernstian slope)
    state: str = "waiting"
    points: list[Point] = field(default_factory=list)
    message: str = ""
    report: dict | None = None
    calibration_id: int | None = None
    touched: float = 0.0
    # Why the hub holds this sensor's readings back before they reach the session
    # (EC without a fresh water temperature); None while they flow.
    held_back: str | None = None
    _stability: Stability | None = None

    def __post_init__(self) -> None:
        self.touched = self.clock()
        self.message = self._ask()

    @property
    def active(self) -> bool:
        return self.state in ACTIVE

    @property
    def standard(self) -> float | None:
        """The standard the probe should be in now (None once all are measured)."""
        index = len(self.points)
        return self.standards[index] if index < len(self.standards) else None

    def measure(self) -> None:
        if self.state not in ("waiting", "unstable"):
            raise SessionError(f"cannot measure while the session is {self.state}")
        self.state = "measuring"
        self.touched = self.clock()
        self._stability = Stability(self.rule, self.touched)
        self.message = f"measuring in {self._name(self.standard)}: waiting for a stable reading (within {self._rule_text()} over {self.rule.seconds:g} s)"

    def sample(self, raw: float) -> bool:
        """Feed one raw reading; True when it completed the last point."""
        if self.state != "measuring":
            return False
        now = self.clock()
        settled = self._stability.add(now, raw)
        if settled is None:
            if now - self._stability.started > self.rule.timeout:
                self._time_out(now)
            return False
        self.points.append(Point(settled, self.standard))
        self._stability = None
        self.touched = now
        if self.standard is None:
            self.state = "saving"
            self.message = "all points measured; computing and saving the calibration"
            return True
        self.state = "waiting"
        self.message = f"recorded {self._name(self.points[-1].reference)} (raw {settled:.4g}). " + self._ask()
        return False

    def check_timeout(self) -> None:
        """A measuring session whose readings stopped arriving still times out."""
        now = self.clock()
        if self.state == "measuring" and now - self._stability.started > self.rule.timeout:
            self._time_out(now)

    def _time_out(self, now: float) -> None:
        # Whoever notices the timeout (a reading, or a look between readings),
        # the message says what went wrong in the window that just ended.
        self.state = "unstable"
        values = self._stability.values_since(now - self.rule.seconds)
        if not values and self.held_back:
            self.message = (
                f"no stable reading within {self.rule.timeout:g} s: the readings are held back, {self.held_back}; "
                "fix that, then measure again"
            )
        elif not values:
            self.message = (
                f"no stable reading within {self.rule.timeout:g} s (no readings in the last {self.rule.seconds:g} s): "
                "is the probe's device sending? Measure again when it is"
            )
        elif len(values) < MIN_SAMPLES:
            self.message = (
                f"no stable reading within {self.rule.timeout:g} s: only {len(values)} reading{'s' if len(values) > 1 else ''} "
                f"in the last {self.rule.seconds:g} s, and a stable reading needs {MIN_SAMPLES}; make the stability "
                "window (calibration stability seconds) at least 3 times the sensor's reading interval, then measure again"
            )
        else:
            self.message = (
                f"the reading did not settle within {self.rule.timeout:g} s (spread {max(values) - min(values):.4g}, "
                f"allowed {self._rule_text()}): check the probe is fully in {self._name(self.standard)}, "
                "stir gently, wait for the temperature to even out, then measure again"
            )

    def finish(self, state: str, message: str, report: dict | None = None, calibration_id: int | None = None) -> None:
        self.state, self.message, self.report, self.calibration_id = state, message, report, calibration_id

    def as_dict(self) -> dict:
        out = {
            "sensor_id": self.sensor_id,
            "kind": self.kind,
            "state": self.state,
            "message": self.message,
            "standards": self.standards,
            "next_standard": self.standard if self.active else None,
            "points": [{"raw": p.raw, "reference": p.reference} for p in self.points],
            "temperature": self.temperature,
        }
        if self._stability is not None and self.state == "measuring":
            out["progress"] = self._stability.progress(self.clock())
        if self.report is not None:
            out["report"] = self.report
        if self.calibration_id is not None:
            out["calibration_id"] = self.calibration_id
        return out

    def _ask(self) -> str:
        step = len(self.points) + 1
        return f"point {step} of {len(self.standards)}: rinse the probe, put it in {self._name(self.standard)}, then measure"

    def _name(self, reference: float | None) -> str:
        if self.kind == "ph":
            return f"the pH {reference:.2f} buffer"
        return f"the {reference:g} {self.unit} standard"

    def _rule_text(self) -> str:
        if self.rule.spread is not None:
            return f"{self.rule.spread:g} raw units"
        return f"{self.rule.spread_percent if self.rule.spread_percent is not None else 1.0:g} %"


class SessionError(Exception):
    """A request that does not fit the session's state (HTTP 409)."""
