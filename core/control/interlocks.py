"""Interlocks: reasons a dosing controller must not dose now.

Each interlock answers one question, "why not dose now?", with a reason or
None. A controller asks all of them every period and doses only when none has
a reason; a reason that appears or clears is logged, stored and streamed once.

Built in: a stale sensor, an implausible reading (outside `plausible:` or DEFAULT_BANDS), a low water level, the
hour/day limits (core/control/dosing.py), a sensor in a calibration session
(`BeingCalibrated`, added by the hub), a sensor-fault alert (`SensorFaultAlert`,
added by the hub), a sensor with no or an overdue calibration (`Uncalibrated`, added
by the hub; off with `require_calibration: false`), and `SensorHolds`, the plug for any other part of the hub:

    hub.control.holds.hold(sensor_id, "calibration", "being calibrated")
    hub.control.holds.release(sensor_id, "calibration")

Anything else can add an object with `check(controller, now) -> str | None`
to `hub.control.interlocks`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from smartanom.control.dosing import DosingController


class Interlock(Protocol):
    def check(self, controller: "DosingController", now: float) -> str | None:
        """Why `controller` must not dose at `now`, or None."""


class SensorHolds:
    """Holds on sensors, each under a key (who holds it) with a reason."""

    def __init__(self) -> None:
        self._holds: dict[int, dict[str, str]] = {}

    def hold(self, sensor_id: int, key: str, reason: str) -> None:
        self._holds.setdefault(sensor_id, {})[key] = reason

    def release(self, sensor_id: int, key: str) -> None:
        held = self._holds.get(sensor_id, {})
        held.pop(key, None)
        if not held:
            self._holds.pop(sensor_id, None)

    def reasons(self, sensor_id: int) -> list[str]:
        return list(self._holds.get(sensor_id, {}).values())

    def check(self, controller: "DosingController", now: float) -> str | None:
        for sensor_id in controller.sensor_ids:
            reasons = self.reasons(sensor_id)
            if reasons:
                return f"sensor {sensor_id} is held: {'; '.join(reasons)}"
        return None


class Stale:
    def check(self, controller: "DosingController", now: float) -> str | None:
        seen = controller.readings.get(controller.config.sensor)
        limit = controller.config.stale_after
        if seen is None:
            return f"no reading yet from sensor {controller.config.sensor}"
        age = now - seen[1]
        if age > limit:
            return f"sensor {controller.config.sensor} is stale (last reading {age:.0f} s ago, limit {limit:g} s)"
        return None


# Plausible bands for a dosing sensor whose rule sets no `plausible:`, by (type, unit). A
# hydroponic reservoir lives around pH 5.5-6.5 and EC 0.5-3 mS/cm; readings beyond these
# bands are a probe in air, a dry or broken electrode or a loose cable, not the tank. EC in
# uS/cm is the same band x 1000; TDS in ppm covers both the 500 and the 700 scale.
DEFAULT_BANDS: dict[tuple[str, str | None], tuple[float, float]] = {
    ("ph", None): (3.0, 9.5),  # pH has one unit, whatever the YAML calls it
    ("ec", "mS/cm"): (0.05, 8.0),
    ("ec", "uS/cm"): (50.0, 8000.0),
    ("ec", "µS/cm"): (50.0, 8000.0),
    ("tds", "ppm"): (25.0, 5600.0),
    ("tds", "mg/L"): (25.0, 5600.0),
}


def plausible_band(controller: "DosingController") -> tuple[float, float, str] | None:
    """(min, max, where it comes from) for the controller's sensor, or None if none is known."""
    bounds = controller.config.plausible
    if bounds is not None:
        return bounds.min, bounds.max, "plausible"
    sensor = controller.control.sensors.get(controller.config.sensor)
    kind, unit = getattr(sensor, "type", None), getattr(sensor, "unit", None)
    band = DEFAULT_BANDS.get((kind, unit)) or DEFAULT_BANDS.get((kind, None))
    if band is None:
        return None
    return band[0], band[1], f"default plausible band for {kind} in {unit} (set plausible: to change it)"


class Implausible:
    def check(self, controller: "DosingController", now: float) -> str | None:
        seen = controller.readings.get(controller.config.sensor)
        band = plausible_band(controller)
        if band is None or seen is None:
            return None
        low, high, source = band
        if not low <= seen[0] <= high:
            return f"sensor {controller.config.sensor} reads {seen[0]:g}, outside the {source}: {low:g} to {high:g}"
        return None


class LowLevel:
    def check(self, controller: "DosingController", now: float) -> str | None:
        guard = controller.config.level
        if guard is None:
            return None
        seen = controller.readings.get(guard.sensor)
        if seen is None or now - seen[1] > controller.config.stale_after:
            return f"water level unknown (sensor {guard.sensor} has no recent reading)"
        if seen[0] < guard.min:
            return f"water level {seen[0]:g} is below {guard.min:g}"
        return None


class BeingCalibrated:
    """Dosing holds while a sensor it reads is in a calibration session: the probe is
    in a buffer, not in the tank (core/calibration/service.py)."""

    def __init__(self, calibration) -> None:
        self.calibration = calibration

    def check(self, controller: "DosingController", now: float) -> str | None:
        for sensor_id in controller.sensor_ids:
            if self.calibration.is_calibrating(sensor_id):
                return f"sensor {sensor_id} is being calibrated"
        return None


class Uncalibrated:
    """Dosing holds while its sensor has no calibration on record, or one older than its
    reminder (core/calibration/service.py `due_state`, which also raises `calibration_due`),
    unless the rule says `require_calibration: false` (the probe is calibrated in hardware)."""

    def __init__(self, calibration, registry) -> None:
        self.calibration = calibration
        self.registry = registry

    def check(self, controller: "DosingController", now: float) -> str | None:
        if not controller.config.require_calibration:
            return None
        sensor_id = controller.config.sensor
        todo = (f"calibrate it: smartanom calibrate {sensor_id}, "
                "or set require_calibration: false if the probe is calibrated in hardware")
        if self.calibration.active.get(sensor_id) is None:
            return f"sensor {sensor_id} has no calibration on record: {todo}"
        sensor = self.registry.sensor(sensor_id)
        state = self.calibration.due_state(sensor) if sensor is not None else None
        if state is not None and state["due"]:
            return (f"sensor {sensor_id}'s calibration is overdue (calibrated {state['age_days']:.0f} days ago, "
                    f"due every {state['reminder_days']:g} days): {todo}")
        return None


# Alert kinds that say a sensor cannot be trusted (a range alert is about the tank, not the probe:
# pH above its range is exactly when dosing should act). Other subsystems may raise "*_fault".
FAULT_KINDS = ("no_data", "inactive")


class SensorFaultAlert:
    """Dosing holds while an alert says one of its sensors (or that sensor's device) is at fault
    (core/alerts/engine.py)."""

    def __init__(self, alerts, registry) -> None:
        self.alerts = alerts
        self.registry = registry

    def check(self, controller: "DosingController", now: float) -> str | None:
        for sensor_id in controller.sensor_ids:
            sensor = self.registry.sensor(sensor_id)
            found = self.alerts.active_for_sensor(sensor_id) + (self.alerts.active_for_device(sensor.device.id) if sensor else [])
            for alert in found:
                if alert.kind in FAULT_KINDS or alert.kind.endswith("_fault"):
                    return f"alert on sensor {sensor_id}: {alert.message}"
        return None


BUILT_IN: tuple[Interlock, ...] = (Stale(), Implausible(), LowLevel())
