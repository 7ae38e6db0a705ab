"""A dosing controller: pH or EC brought to a target in pulses, within limits.

Every control period: if any interlock has a reason, hold (pump off, reason
logged, stored and streamed once). Otherwise, once the mixing time after the
last dose has passed and a reading taken after it has arrived, size a dose
from the error (proportional, or simple-pid), cut it to the per-dose, per-hour
and per-day limits, record it, and run the pump for ml / (ml per s) seconds.

The dose row is written before the pump starts; the limits and the mixing
wait are read back from those rows at start, so a restart neither repeats a
dose nor lets the limits start afresh.

Clock jumps (a Pi without RTC, corrected by NTP): while the hub runs, each dose
given is also stamped on the monotonic clock, and it counts inside a rolling
window unless BOTH clocks say it has left; the mixing wait, too, ends only when
both clocks say so. Across a restart only the recorded wall times exist: a dose
stamped later than now (the clock went back) counts until the clock passes it.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from simple_pid import PID

from smartanom.control.config import DosingConfig
from smartanom.control.journal import Dose

if TYPE_CHECKING:
    from smartanom.control.engine import Control

log = logging.getLogger("smartanom.control.dosing")

HOUR, DAY = 3600.0, 86400.0


class DosingController:
    def __init__(self, config: DosingConfig, control: "Control"):
        self.config = config
        self.control = control
        self.readings = control.readings  # sensor id -> (value, when it was measured, at the latest when it arrived)
        self.sensor_ids = [config.sensor] + ([config.level.sensor] if config.level else [])
        self.held: str | None = None  # why dosing is stopped now, in words
        self._cause: object = None
        self.mixed_at = 0.0  # readings that arrive before this do not count
        self.mixed_mono = float("-inf")  # the same on the monotonic clock
        # Doses given in this run: (wall ts, monotonic ts, ml), for the window rule above.
        self._given: list[tuple[float, float, float]] = []
        self.pumping = False
        self._pulse: asyncio.Task | None = None
        self._pid: PID | None = None
        self._pid_at: float | None = None
        self._sign = 1.0 if config.direction == "down" else -1.0

    @property
    def id(self) -> str:
        return self.config.id

    def resume_from(self, journal) -> None:
        """Pick up the mixing wait of the last dose given before a restart."""
        last = journal.last_dose(self.id)
        if last is not None:
            self.mixed_at = last.ts + last.seconds + self.config.mixing_seconds
            now, mono = self.control.clock.now(), self.control.clock.monotonic()
            self.mixed_mono = mono + max(0.0, self.mixed_at - now)
            if last.ts > now:
                log.warning("Dosing %s: the last dose is recorded %.0f s in the future: the clock went back; "
                            "it counts in the limits until the clock passes it", self.id, last.ts - now)

    def as_dict(self, now: float) -> dict:
        journal = self.control.journal
        c = self.config
        return {
            "id": c.id,
            "sensor_id": c.sensor,
            "output_id": c.output,
            "target": c.target,
            "direction": c.direction,
            "held": self.held,
            "pumping": self.pumping,
            "mixing_until": self.mixed_at if self.mixed_at > now else None,
            "ml_last_hour": round(self._ml_in(HOUR, now), 3),
            "ml_last_day": round(self._ml_in(DAY, now), 3),
        }

    async def step(self, now: float) -> None:
        cause, reason = self._hold_reason(now)
        if self.pumping:
            if cause in (None, "day", "hour"):
                return  # the pulse's own task ends it (the running dose is already in the limits)
            # A stale or faulty sensor, a low level... mid-pulse: stop the pump now. The record
            # keeps the whole dose, so the limits count more than was given, never less.
            self.cancel()
            self.pumping = False
        if cause != self._cause:
            # Logged, stored and streamed once per cause, not again each period
            # as the value in its text moves (a level of 9.0, 8.9, 9.1 ...).
            self._cause = cause
            await self._set_held(reason)
        self.held = reason
        if reason is not None:
            return
        reading = self.readings.get(self.config.sensor)
        mono = self.control.clock.monotonic()
        arrived = self.control.arrived.get(self.config.sensor, float("-inf"))
        if now < self.mixed_at or reading[1] < self.mixed_at or mono < self.mixed_mono or arrived < self.mixed_mono:
            return  # still mixing, or no reading of the mixed tank yet (by either clock)
        error = self._sign * (reading[0] - self.config.target)
        if error <= self.config.deadband:
            self._pid_at = None  # in band: the next excursion starts without old integral
            return
        wanted = self._size(error, reading[0], now)
        ml = min(wanted, self.config.max_dose_ml, self._budget(now))
        if ml < self.config.min_dose_ml:
            return
        why = f"sensor {self.config.sensor} = {reading[0]:g}, target {self.config.target:g}"
        await self._dose(ml, now, why)

    def _hold_reason(self, now: float) -> tuple[object, str | None]:
        """(what holds, why in words), or (None, None) when nothing does."""
        if self.control.outputs.get(self.config.output).available is False:
            return "output", f"output {self.config.output} is unavailable"
        for interlock in self.control.interlock_list():
            reason = interlock.check(self, now)
            if reason:
                return interlock, reason
        c = self.config
        try:
            hour, day = self._left(now)
        except Exception as exc:
            return "record", f"the dose record cannot be read ({exc})"  # no record, no dose
        if day < c.min_dose_ml:
            return "day", f"daily limit reached ({c.max_ml_per_day:g} ml in 24 h)"
        if hour < c.min_dose_ml:
            return "hour", f"hourly limit reached ({c.max_ml_per_hour:g} ml in 1 h)"
        return None, None

    def _left(self, now: float) -> tuple[float, float]:
        """Ml the hour and day limits still allow (rolling windows, from the dose record)."""
        return self.config.max_ml_per_hour - self._ml_in(HOUR, now), self.config.max_ml_per_day - self._ml_in(DAY, now)

    def _ml_in(self, window: float, now: float) -> float:
        """Ml in the rolling window: the record's doses by wall time, plus this run's doses
        that the wall clock says have left but the monotonic clock says have not."""
        mono = self.control.clock.monotonic()
        self._given = [g for g in self._given if g[1] >= mono - DAY]
        recorded = self.control.journal.ml_since(self.config.id, now - window, self.control.outputs.dry_run)
        return recorded + sum(ml for ts, at, ml in self._given if ts < now - window and at >= mono - window)

    def _budget(self, now: float) -> float:
        return max(0.0, min(self._left(now)))

    def _size(self, error: float, value: float, now: float) -> float:
        c = self.config
        if c.mode == "proportional":
            return c.gain_ml * error
        if self._pid is None:
            # simple-pid's error is setpoint - input. With both negated for 'down'
            # it is value - target, so the output (ml) grows while the value is
            # above target; for 'up' it is target - value. One PID shape for both.
            self._pid = PID(c.pid.kp, c.pid.ki, c.pid.kd, setpoint=-self._sign * c.target, sample_time=None,
                            output_limits=(0, c.max_dose_ml), time_fn=self.control.clock.monotonic)
        if self._pid_at is None:
            self._pid.reset()
        # dt on the monotonic clock: a wall-clock jump must not look like hours of integral.
        mono = self.control.clock.monotonic()
        dt = None if self._pid_at is None else mono - self._pid_at
        self._pid_at = mono
        return float(self._pid(-self._sign * value, dt=dt) or 0.0)

    async def _dose(self, ml: float, now: float, why: str) -> None:
        c = self.config
        seconds = ml / c.pump_ml_per_s
        dry = self.control.outputs.dry_run
        if not self.control.journal.record_dose(Dose(now, c.id, c.output, ml, seconds), dry):
            self._cause = "record"
            await self._set_held("the dose record cannot be written")
            return
        mono = self.control.clock.monotonic()
        self._given.append((now, mono, ml))
        self.mixed_at = now + seconds + c.mixing_seconds
        self.mixed_mono = mono + seconds + c.mixing_seconds
        reason = f"{c.id}: {ml:.2f} ml ({seconds:.1f} s) because {why}"
        if not await self.control.outputs.switch(c.output, True, "dose", reason):
            return
        self.pumping = True
        self._pulse = asyncio.get_running_loop().create_task(self._end_pulse(seconds), name=f"dose:{c.id}")

    async def _end_pulse(self, seconds: float) -> None:
        try:
            await self.control.clock.sleep(seconds)
            await self.control.outputs.switch(self.config.output, False, "dose", f"{self.id}: pulse of {seconds:.1f} s done")
        finally:
            self.pumping = False

    async def _set_held(self, reason: str | None) -> None:
        self.held = reason
        if reason is not None:
            log.warning("Dosing %s stopped: %s", self.id, reason)
            # Stop (or keep stopped) the pump, with the reason on record and on the stream.
            await self.control.outputs.switch(self.config.output, False, "interlock", f"{self.id}: dosing stopped: {reason}")
        else:
            log.info("Dosing %s may dose again", self.id)

    def cancel(self) -> None:
        if self._pulse is not None:
            self._pulse.cancel()
