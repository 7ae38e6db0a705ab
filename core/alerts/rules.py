"""From config to rules: what each sensor's alert ranges and timings are.

A sensor's effective limits are its device's profile (built-in, or extended
under `profiles:`) for the sensor's type, with the sensor's own `alert:` keys
on top. `build_rules` turns the whole config into `RangeRule`s (one per sensor
that has a range) and `SensorWatch`es (a no-data limit per sensor); the
evaluator (core/alerts/evaluator.py) runs them.
"""

from __future__ import annotations

from dataclasses import dataclass

from smartanom.alerts.profiles import BUILTIN, HYSTERESIS, ADVICE, Limits, Profile


# The keys of the conditions the hub watches itself (other subsystems choose their own).
def range_key(sensor_id: int) -> str:
    return f"sensor_{sensor_id}_range"


def no_data_key(sensor_id: int) -> str:
    return f"sensor_{sensor_id}_no_data"


def inactive_key(device_id: int) -> str:
    return f"device_{device_id}_inactive"


@dataclass(frozen=True)
class RangeRule:
    """A sensor's ranges, resolved. `key` names the rule in alerts and on MQTT."""

    key: str
    sensor_id: int
    device_id: int
    limits: Limits
    pending: float  # `for`, seconds
    profile: str | None

    def classify(self, value: float) -> tuple[str, str, float] | None:
        """(severity, trigger, threshold) of a value outside the good range, else None."""
        lim = self.limits
        if lim.critical_min is not None and value < lim.critical_min:
            return "critical", "below_critical_min", lim.critical_min
        if lim.critical_max is not None and value > lim.critical_max:
            return "critical", "above_critical_max", lim.critical_max
        if lim.min is not None and value < lim.min:
            return "warning", "below_min", lim.min
        if lim.max is not None and value > lim.max:
            return "warning", "above_max", lim.max
        return None

    def back_inside(self, value: float) -> bool:
        """Inside the good range by the hysteresis margin (the resolve condition)."""
        lim, h = self.limits, self.limits.hysteresis
        low = lim.min if lim.min is not None else lim.critical_min
        high = lim.max if lim.max is not None else lim.critical_max
        return (low is None or value >= low + h) and (high is None or value <= high - h)

    def advice(self, trigger: str) -> str:
        return self.limits.advice_low if trigger.startswith("below") else self.limits.advice_high

    def as_dict(self) -> dict:
        lim = self.limits
        return {
            "key": self.key, "sensor_id": self.sensor_id, "device_id": self.device_id, "profile": self.profile,
            "unit": lim.unit, "min": lim.min, "max": lim.max,
            "critical_min": lim.critical_min, "critical_max": lim.critical_max,
            "hysteresis": lim.hysteresis, "for": self.pending,
        }


@dataclass(frozen=True)
class Rules:
    ranges: dict[int, RangeRule]  # sensor id -> its range rule
    no_data_after: dict[int, float]  # sensor id -> seconds of silence (0: off)


def resolve_profiles(profiles: dict) -> dict[str, Profile]:
    """Built-in profiles, extended or joined by the config's `profiles:`."""
    resolved = dict(BUILTIN)
    pending = dict(profiles)
    # `extends` may name a profile defined further down: resolve in dependency order.
    while pending:
        progress = False
        for name, cfg in list(pending.items()):
            base_name = cfg.extends or (name if name in BUILTIN else None)
            if base_name is not None and base_name not in resolved and base_name != name:
                continue
            base = resolved.get(base_name) if base_name else None
            sensors = dict(base.sensors) if base else {}
            for sensor_type, row in cfg.sensors.items():
                advice_low, advice_high = ADVICE.get(sensor_type, ("", ""))
                start = sensors.get(sensor_type) or Limits(
                    unit="", hysteresis=HYSTERESIS.get(sensor_type, 0.0), advice_low=advice_low, advice_high=advice_high
                )
                sensors[sensor_type] = start.merged(**row.model_dump(exclude_unset=True))
            resolved[name] = Profile(name, cfg.description or (base.description if base else ""), sensors)
            del pending[name]
            progress = True
        if not progress:
            raise ValueError(f"profiles {', '.join(pending)} extend each other in a circle")
    return resolved


def effective_limits(device_cfg, sensor_cfg, profiles: dict[str, Profile]) -> tuple[Limits | None, str | None]:
    """The sensor's limits (None: no range rule), and the profile they came from.

    Raises ValueError when the merged ranges are out of order.
    """
    from smartanom.registry import SENSOR_TYPES

    unit = sensor_cfg.unit or SENSOR_TYPES.get(sensor_cfg.type, "")  # a plugin's type: no profile covers it
    alert = sensor_cfg.alert
    if alert is not None and not alert.enabled:
        return None, None
    limits, source = None, None
    profile = profiles.get(device_cfg.profile) if device_cfg.profile else None
    if profile is not None:
        candidate = profile.sensors.get(sensor_cfg.type)
        if candidate is not None and (not candidate.unit or candidate.unit == unit):
            limits, source = candidate, profile.name
    if alert is not None:
        overrides = {k: getattr(alert, k) for k in ("min", "max", "critical_min", "critical_max", "hysteresis")}
        if any(v is not None for k, v in overrides.items() if k != "hysteresis"):
            if limits is None:
                low, high = ADVICE.get(sensor_cfg.type, ("", ""))
                limits = Limits(unit, hysteresis=HYSTERESIS.get(sensor_cfg.type, 0.0), advice_low=low, advice_high=high)
            limits = limits.merged(**overrides)
        elif limits is not None and overrides["hysteresis"] is not None:
            limits = limits.merged(hysteresis=overrides["hysteresis"])
    if limits is None or all(v is None for v in (limits.min, limits.max, limits.critical_min, limits.critical_max)):
        return None, None
    _check_order(limits)
    return limits, source


def _check_order(lim: Limits) -> None:
    pairs = [("critical_min", lim.critical_min, "min", lim.min), ("min", lim.min, "max", lim.max),
             ("max", lim.max, "critical_max", lim.critical_max), ("critical_min", lim.critical_min, "critical_max", lim.critical_max)]
    for low_name, low, high_name, high in pairs:
        if low is not None and high is not None and low > high:
            raise ValueError(f"alert ranges out of order: {low_name} ({low:g}) is above {high_name} ({high:g}) (after applying the profile)")
    low = lim.min if lim.min is not None else lim.critical_min
    high = lim.max if lim.max is not None else lim.critical_max
    if low is not None and high is not None and low + lim.hysteresis > high - lim.hysteresis:
        raise ValueError(f"hysteresis {lim.hysteresis:g} is too wide for the range {low:g} to {high:g}: no value could resolve an alert")


def build_rules(devices, alerts_cfg, profiles_cfg: dict) -> Rules:
    """Every sensor's range rule and no-data limit, from validated config."""
    profiles = resolve_profiles(profiles_cfg)
    ranges: dict[int, RangeRule] = {}
    no_data: dict[int, float] = {}
    for device in devices:
        for sensor in device.sensors:
            alert = sensor.alert
            if alert is not None and not alert.enabled:
                continue
            pending = alert.for_ if alert is not None and alert.for_ is not None else alerts_cfg.for_
            limits, source = effective_limits(device, sensor, profiles)
            if limits is not None:
                ranges[sensor.id] = RangeRule(range_key(sensor.id), sensor.id, device.id, limits, pending, source)
            silent = alert.no_data_after if alert is not None and alert.no_data_after is not None else alerts_cfg.no_data_after
            no_data[sensor.id] = silent
    return Rules(ranges, no_data)


def skipped_for_unit(devices, profiles_cfg: dict) -> list[str]:
    """Sensors whose device profile has their type but in another unit (for check-config)."""
    from smartanom.registry import SENSOR_TYPES

    profiles = resolve_profiles(profiles_cfg)
    notes = []
    for device in devices:
        profile = profiles.get(device.profile) if device.profile else None
        if profile is None:
            continue
        for sensor in device.sensors:
            limits = profile.sensors.get(sensor.type)
            unit = sensor.unit or SENSOR_TYPES.get(sensor.type, "")
            if limits is not None and limits.unit and limits.unit != unit and (sensor.alert is None or sensor.alert.min is None and sensor.alert.max is None):
                notes.append(f"sensor {sensor.id} ({sensor.type}, {unit}) of device {device.id}: profile '{profile.name}' gives its range in {limits.unit}, so it has no alert range; set alert: {{min, max}} on the sensor")
    return notes
