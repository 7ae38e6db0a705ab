"""The control loop: every period, each rule says what its output should be.

Owns the outputs (`OutputBank`), the latest reading of every sensor (by the
control clock's time of arrival), the schedules, threshold rules, dosing
controllers and manual overrides. One rule per output (checked at start-up),
and an override beats the rule until it expires.

Fail safe: at start every output goes to its safe state before any rule runs;
a tick that raises puts every output back to its safe state and the loop goes
on next period; at stop every output goes to its safe state.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from smartanom.control import schedules
from smartanom.control.config import ControlConfig
from smartanom.control.dosing import DosingController
from smartanom.control.interlocks import BUILT_IN, Interlock, SensorHolds
from smartanom.control.outputs import OverrideRequest
from smartanom.control.thresholds import ThresholdRule
from smartanom.events import SensorReading

if TYPE_CHECKING:
    from smartanom.bus import EventBus
    from smartanom.control.journal import Journal
    from smartanom.control.outputs import OutputBank

log = logging.getLogger("smartanom.control")


@dataclass
class Override:
    on: bool
    until: float
    by: str

    def as_dict(self) -> dict:
        return {"state": "on" if self.on else "off", "until": self.until, "by": self.by}


class OverrideRefused(Exception):
    pass


class Control:
    def __init__(self, config: ControlConfig, outputs: "OutputBank", bus: "EventBus", journal: "Journal", clock):
        self.config = config
        self.outputs = outputs
        self.bus = bus
        self.journal = journal
        self.clock = clock
        self.zone = ZoneInfo(config.timezone)
        self.readings: dict[int, tuple[float, float]] = {}
        # When each sensor's latest reading arrived, on the monotonic clock (see dosing's mixing wait).
        self.arrived: dict[int, float] = {}
        # Each sensor as its readings describe it (type, unit): the default plausible bands need them.
        self.sensors: dict[int, object] = {}
        self.holds = SensorHolds()
        # Interlocks other parts of the hub add (see core/control/interlocks.py).
        self.interlocks: list[Interlock] = []
        self.overrides: dict[str, Override] = {}
        self.thresholds = [ThresholdRule(t) for t in config.thresholds]
        self.dosers = [DosingController(d, self) for d in config.dosing]
        self.dosed_outputs = {d.output for d in config.dosing}
        self._task: asyncio.Task | None = None
        self._unsubscribers: list = []

    def interlock_list(self) -> tuple:
        return (*BUILT_IN, self.holds, *self.interlocks)

    async def start(self) -> None:
        self._unsubscribers = [
            self.bus.subscribe(SensorReading, self._on_reading),
            self.bus.subscribe(OverrideRequest, self._on_override_request),
        ]
        await self.outputs.all_safe("start", "hub starting: every output to its safe state")
        for doser in self.dosers:
            doser.resume_from(self.journal)
        self._task = asyncio.get_running_loop().create_task(self._run(), name="control")

    async def stop(self) -> None:
        for unsubscribe in self._unsubscribers:
            unsubscribe()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        for doser in self.dosers:
            doser.cancel()
        await self.outputs.all_safe("safe", "hub stopping: every output to its safe state")
        await self.outputs.close()
        self.journal.close()

    async def _on_override_request(self, request: OverrideRequest) -> None:
        try:
            await self.override(request.output_id, request.on, request.seconds, request.by)
        except KeyError:
            log.warning("Override of unknown output %r asked by %s: ignored", request.output_id, request.by)
        except OverrideRefused as exc:
            log.warning("Override of %s asked by %s refused: %s", request.output_id, request.by, exc)

    def _on_reading(self, reading: SensorReading) -> None:
        # A reading counts from when it was measured, never later than it arrived: a
        # backlog uploaded late (a device that was offline) must neither look fresh to
        # the stale check nor pass for a reading of the tank mixed after a dose.
        when = min(self.clock.now(), reading.timestamp)
        seen = self.readings.get(reading.sensor.id)
        if seen is None or when >= seen[1]:
            self.readings[reading.sensor.id] = (reading.value, when)
            self.arrived[reading.sensor.id] = self.clock.monotonic()
            self.sensors[reading.sensor.id] = reading.sensor

    async def _run(self) -> None:
        while True:
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("Control loop failed; every output to its safe state, trying again next period")
                try:
                    await self.outputs.all_safe("safe", "control loop failed")
                except Exception:
                    log.exception("Could not make every output safe")
            await self.clock.sleep(self.config.period)

    async def tick(self) -> None:
        now = self.clock.now()
        for output_id, override in list(self.overrides.items()):
            if now >= override.until:
                del self.overrides[output_id]
                log.info("Override of %s expired; its rule decides again", output_id)
                output = self.outputs.get(output_id)
                if output_id not in self.driven():
                    await self._ensure(output_id, output.options.safe_state, "safe", "manual override expired")
        for schedule in self.config.schedules:
            on, why = schedules.wanted(schedule, now, self.zone)
            await self._ensure(schedule.output, on, "schedule", why)
        for rule in self.thresholds:
            on, why = rule.wanted(self.readings.get(rule.config.sensor), now)
            await self._ensure(rule.config.output, on, "rule", why)
        for output_id, override in self.overrides.items():
            await self._ensure(output_id, override.on, "manual", f"override by {override.by}", rule_driven=False)
        for doser in self.dosers:
            if doser.config.output not in self.overrides:
                await doser.step(now)
        retried = self.driven() - self.dosed_outputs  # schedules and thresholds retry their own state
        for output in self.outputs.outputs.values():
            # Hardware that was gone (a dosing pump perhaps left running, an output no
            # rule drives): keep asking for the safe state until it answers.
            if not output.available and output.id not in retried and output.id not in self.overrides:
                await self.outputs.switch(output.id, output.options.safe_state, "safe", "retrying the safe state")

    def driven(self) -> set[str]:
        return {s.output for s in self.config.schedules} | {t.config.output for t in self.thresholds} | self.dosed_outputs

    async def _ensure(self, output_id: str, on: bool, source: str, why: str, rule_driven: bool = True) -> None:
        """Switch only on a change, or to retry an output whose last switch failed."""
        if rule_driven and output_id in self.overrides:
            return
        output = self.outputs.get(output_id)
        if output.on is on and output.available:
            return
        await self.outputs.switch(output_id, on, source, why)

    async def override(self, output_id: str, on: bool, seconds: float, by: str) -> Override:
        """Hold an output on or off for `seconds`, whatever its rule says. Raises OverrideRefused."""
        if self.outputs.get(output_id) is None:
            raise KeyError(output_id)
        if not 0 < seconds <= self.config.max_override:
            raise OverrideRefused(f"duration must be more than 0 and at most {self.config.max_override:g} s (control.max_override)")
        if on and output_id in self.dosed_outputs:
            # A dosing pump run by hand would bypass every dosing limit and interlock.
            raise OverrideRefused(f"output {output_id} is a dosing pump: it can be overridden off, never on")
        override = self.overrides[output_id] = Override(on, self.clock.now() + seconds, by)
        self._rearm(output_id)
        for doser in self.dosers:
            if doser.config.output == output_id:
                doser.cancel()
        await self.outputs.switch(output_id, on, "manual", f"override by {by} for {seconds:g} s")
        return override

    def _rearm(self, output_id: str) -> None:
        # Someone has looked at this output: a tripped max_on guard may run again.
        for rule in self.thresholds:
            if rule.config.output == output_id:
                rule.reset()

    async def clear_override(self, output_id: str, by: str) -> None:
        if self.overrides.pop(output_id, None) is not None:
            log.info("Override of %s cleared by %s", output_id, by)
            self._rearm(output_id)
            output = self.outputs.get(output_id)
            if output_id not in self.driven():
                await self.outputs.switch(output_id, output.options.safe_state, "manual", f"override cleared by {by}")
            else:
                await self.tick()

    def status(self) -> dict:
        now = self.clock.now()
        return {
            "dry_run": self.outputs.dry_run,
            "timezone": self.config.timezone,
            "period": self.config.period,
            "overrides": {k: v.as_dict() for k, v in self.overrides.items()},
            "dosing": [d.as_dict(now) for d in self.dosers],
        }
