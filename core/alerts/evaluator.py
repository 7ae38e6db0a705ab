"""The alert state machine: readings and status changes in, alert transitions out.

No I/O and no waiting: every method takes what happened, looks at the clock it
was given, and returns the transitions it caused as `(event, alert)` pairs,
event being `started`, `escalated`, `acknowledged` or `resolved`. The engine
(core/alerts/engine.py) stores, broadcasts and notifies them. So tests drive a
day of readings on a FakeClock in milliseconds.

Flapping is prevented twice over: a value must stay outside the good range for
the rule's pending period (`for`) before the alert starts, and back inside the
range by the hysteresis margin for `for` again before it resolves. A reading
jittering at an edge therefore gives one alert, not fifty.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from smartanom.alerts.model import ACKNOWLEDGED, FIRING, RESOLVED, Alert, Clock
from smartanom.alerts.rules import RangeRule, Rules, inactive_key, no_data_key
from smartanom.events import DeviceStatus
from smartanom.registry import Registry, Sensor

Transition = tuple[str, Alert]

_WORDS = {
    "below_min": "below the minimum",
    "above_max": "above the maximum",
    "below_critical_min": "below the critical minimum",
    "above_critical_max": "above the critical maximum",
}


# A reading stamped this many seconds before now is history, not news: it is not evaluated.
STALE_READING = 120.0

# How units read in a sentence ("pH is 7.2", "is 27 °C").
_UNITS = {"ph": "", "celsius": " °C", "percent": " %"}


@dataclass
class _SensorState:
    heard: float  # monotonic time of the last reading (or of the start)
    value: float | None = None
    since: float | None = None  # out of range since (no alert) / back inside since (alert)
    critical_since: float | None = None  # critical since, while a warning alert is active


class Evaluator:
    def __init__(self, registry: Registry, rules: Rules, settings, clock: Clock, next_id: Callable[[], int]):
        self.registry = registry
        self.rules = rules
        self.settings = settings  # AlertsConfig
        self.clock = clock
        self._next_id = next_id
        self.active: dict[str, Alert] = {}  # rule key -> its active alert
        self.maintenance: set[int] = set()  # device ids whose alerts are silenced
        now = clock.monotonic()
        self._sensors = {sid: _SensorState(now) for sid in registry.sensors}

    def restore(self, alerts: list[Alert]) -> None:
        """Active alerts from the store: they go on, and their condition does not start anew."""
        for alert in alerts:
            self.active[alert.key] = alert

    # --- what happens ------------------------------------------------------------------

    def reading(self, sensor: Sensor, value: float, timestamp: float | None = None) -> list[Transition]:
        if sensor.device.id in self.maintenance:
            return []
        if timestamp is not None and timestamp < self.clock.time() - STALE_READING:
            return []  # a backlog replayed (an edge hub catching up): it says nothing about now
        state = self._sensors[sensor.id]
        state.heard, state.value = self.clock.monotonic(), value
        out = self._resolve(no_data_key(sensor.id), "a reading arrived")
        rule = self.rules.ranges.get(sensor.id)
        if rule is not None:
            out += self._check_range(rule, sensor, state)
        return out

    def device_status(self, device_id: int, status: DeviceStatus, reason: str = "") -> list[Transition]:
        key = inactive_key(device_id)
        if status is DeviceStatus.MAINTENANCE:
            self.maintenance.add(device_id)
            return []
        if device_id in self.maintenance:
            # Back from maintenance: periods start afresh, nothing counts from before.
            self.maintenance.discard(device_id)
            now = self.clock.monotonic()
            for sensor in self.registry.devices[device_id].sensors:
                self._sensors[sensor.id] = _SensorState(now)
        if status is DeviceStatus.ACTIVE:
            return self._resolve(key, "the device is active again")
        if key in self.active:
            return []
        device = self.registry.devices[device_id]
        return [self._start(
            key, "inactive", device_id, None, self.settings.inactive_severity,
            f"{device.name} is inactive" + (f": {reason}" if reason else ""),
            trigger="inactive", recommendation="Check the device's power, cable or network, and its plugin in /api/plugins",
        )]

    def tick(self) -> list[Transition]:
        """Time passed: pending periods may have run out, sensors may have gone silent."""
        now = self.clock.monotonic()
        out: list[Transition] = []
        for sensor_id, state in self._sensors.items():
            sensor = self.registry.sensors[sensor_id]
            if sensor.device.id in self.maintenance:
                continue
            rule = self.rules.ranges.get(sensor_id)
            if rule is not None and state.value is not None:
                out += self._check_range(rule, sensor, state)
            silent_after = self.rules.no_data_after.get(sensor_id, 0)
            key = no_data_key(sensor_id)
            if (
                silent_after > 0 and now - state.heard > silent_after and key not in self.active
                and inactive_key(sensor.device.id) not in self.active  # the device alert says it already
            ):
                out.append(self._start(
                    key, "no_data", sensor.device.id, sensor_id, self.settings.no_data_severity,
                    f"{sensor.name} on {sensor.device.name} has sent no reading for {silent_after:g} s",
                    trigger="no_data", recommendation="Check the sensor's cable and the device; see the hub's log",
                ))
        return out

    # --- for people and other subsystems --------------------------------------------------

    def acknowledge(self, alert_id: int, by: str) -> list[Transition]:
        for alert in self.active.values():
            if alert.id == alert_id:
                if alert.state == ACKNOWLEDGED:
                    return []
                alert.state, alert.acknowledged_at, alert.acknowledged_by = ACKNOWLEDGED, self.clock.time(), by
                return [("acknowledged", alert)]
        raise KeyError(alert_id)

    def raise_alert(self, key: str, kind: str, severity: str, message: str, *, device_id=None, sensor_id=None,
                    value=None, threshold=None, recommendation: str = "") -> list[Transition]:
        current = self.active.get(key)
        if current is not None:
            if severity == "critical" and current.severity == "warning":
                current.severity, current.message = severity, message
                return [("escalated", current)]
            return []
        if device_id is not None and device_id in self.maintenance:
            return []
        return [self._start(key, kind, device_id, sensor_id, severity, message, value=value, threshold=threshold,
                            trigger=kind, recommendation=recommendation)]

    def resolve(self, key: str, why: str = "") -> list[Transition]:
        return self._resolve(key, why)

    # --- internals ----------------------------------------------------------------------

    def _check_range(self, rule: RangeRule, sensor: Sensor, state: _SensorState) -> list[Transition]:
        now, value = self.clock.monotonic(), state.value
        alert = self.active.get(rule.key)
        level = rule.classify(value)
        if alert is None:
            if level is None:
                state.since = None
                return []
            if state.since is None:
                state.since = now
            if now - state.since < rule.pending:
                return []
            state.since = state.critical_since = None
            severity, trigger, threshold = level
            return [self._start(
                rule.key, "range", sensor.device.id, sensor.id, severity, self._range_message(rule, sensor, value, trigger, threshold),
                value=value, threshold=threshold, trigger=trigger, recommendation=rule.advice(trigger),
            )]
        alert.value = value
        if rule.back_inside(value):
            state.critical_since = None
            if state.since is None:
                state.since = now
            if now - state.since < rule.pending:
                return []
            state.since = None
            return self._resolve(rule.key, f"back in range at {value:g}")
        state.since = None
        if level is not None and level[0] == "critical" and alert.severity == "warning":
            if state.critical_since is None:
                state.critical_since = now
            if now - state.critical_since >= rule.pending:
                state.critical_since = None
                _, trigger, threshold = level
                alert.severity, alert.trigger, alert.threshold = "critical", trigger, threshold
                alert.message = self._range_message(rule, sensor, value, trigger, threshold)
                alert.recommendation = rule.advice(trigger)
                return [("escalated", alert)]
        else:
            state.critical_since = None
        return []

    @staticmethod
    def _range_message(rule: RangeRule, sensor: Sensor, value: float, trigger: str, threshold: float) -> str:
        lim = rule.limits
        good = f"good range {_bound(lim.min)} to {_bound(lim.max)}"
        source = f", profile {rule.profile}" if rule.profile else ""
        unit = _UNITS.get(sensor.unit, f" {sensor.unit}")
        return f"{sensor.name} on {sensor.device.name} is {value:g}{unit}, {_WORDS[trigger]} {threshold:g} ({good}{source})"

    def _start(self, key, kind, device_id, sensor_id, severity, message, *, value=None, threshold=None,
               trigger="", recommendation="") -> Transition:
        alert = Alert(
            id=self._next_id(), key=key, kind=kind, device_id=device_id, sensor_id=sensor_id, severity=severity,
            message=message, started_at=self.clock.time(), state=FIRING, value=value, threshold=threshold,
            trigger=trigger, recommendation=recommendation,
        )
        self.active[key] = alert
        return ("started", alert)

    def _resolve(self, key: str, why: str) -> list[Transition]:
        alert = self.active.pop(key, None)
        if alert is None:
            return []
        alert.state, alert.resolved_at = RESOLVED, self.clock.time()
        return [("resolved", alert)]


def _bound(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"
