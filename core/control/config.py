"""YAML of the `control:` section: schedules, threshold rules and dosing controllers.

Validated like the rest of the file (pydantic, then file-and-line errors from
core/config.py). `check_references` then checks what one entry cannot check
alone: that every output and sensor a rule names exists, and that no output is
driven by two rules (which one would win is a question better not asked of a pump).
"""

from __future__ import annotations

import re
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from smartanom.sensortypes import BUILTIN_TYPES

_TIME = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


def _time_of_day(value) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        # PyYAML reads an unquoted 06:00 as the base-60 number 360.
        raise ValueError(f"write times of day in quotes, e.g. '06:00' (YAML read an unquoted time as the number {value})")
    if not isinstance(value, str) or not _TIME.match(value):
        raise ValueError(f"must be a time of day 'HH:MM' (24 h), got {value!r}")
    return value


def minutes_of(text: str) -> int:
    hours, minutes = text.split(":")
    return int(hours) * 60 + int(minutes)


class Window(_Strict):
    # On from `start` to `end`, local time; an end before the start runs past midnight.
    start: str
    end: str

    _check_start = field_validator("start", mode="before")(classmethod(lambda cls, v: _time_of_day(v)))
    _check_end = field_validator("end", mode="before")(classmethod(lambda cls, v: _time_of_day(v)))

    @model_validator(mode="after")
    def _not_empty(self):
        if self.start == self.end:
            raise ValueError("start and end are the same time; the window would be empty")
        return self


class Cycle(_Strict):
    # Repeating on/off, restarted at each local midnight so that it is the same every day.
    on_minutes: float = Field(gt=0)
    off_minutes: float = Field(gt=0)


class ScheduleConfig(_Strict):
    output: str
    windows: list[Window] | None = Field(None, min_length=1)
    cycle: Cycle | None = None

    @model_validator(mode="after")
    def _one_kind(self):
        if (self.windows is None) == (self.cycle is None):
            raise ValueError("give either 'windows' (times of day) or 'cycle' (on_minutes/off_minutes), not both or neither")
        return self


TOP_OFF_MAX_ON = 1800.0


class ThresholdConfig(_Strict):
    output: str
    sensor: int = Field(ge=1)
    # Top-off style: on below on_below, off again at off_above.
    on_below: float | None = None
    off_above: float | None = None
    # Cooling style: on above on_above, off again at off_below.
    on_above: float | None = None
    off_below: float | None = None
    # A reading older than this switches the output to its safe state.
    stale_after: float = Field(120.0, gt=0)
    # Flood guard: seconds the output may be on before the sensor reaches its off
    # level. A level probe stuck low but still reporting would otherwise keep a
    # top-off valve open until the tank overflows. Top-off rules default to 1800 s;
    # cooling rules (a chiller may rightly run for hours) have no limit unless given.
    max_on: float | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _pair(self):
        low = (self.on_below, self.off_above)
        high = (self.on_above, self.off_below)
        if all(v is not None for v in low) and all(v is None for v in high):
            if self.on_below >= self.off_above:
                raise ValueError(f"on_below ({self.on_below:g}) must be below off_above ({self.off_above:g}): the gap between them is the hysteresis")
            if self.max_on is None:
                self.max_on = TOP_OFF_MAX_ON
            return self
        if all(v is not None for v in high) and all(v is None for v in low):
            if self.on_above <= self.off_below:
                raise ValueError(f"on_above ({self.on_above:g}) must be above off_below ({self.off_below:g}): the gap between them is the hysteresis")
            return self
        raise ValueError("give on_below with off_above (e.g. a top-off valve) or on_above with off_below (e.g. a chiller)")


class Range(_Strict):
    min: float
    max: float

    @model_validator(mode="after")
    def _ordered(self):
        if self.min >= self.max:
            raise ValueError(f"min ({self.min:g}) must be below max ({self.max:g})")
        return self


class LevelGuard(_Strict):
    sensor: int = Field(ge=1)
    min: float  # no dosing while the level reads below this (or is unknown)


class PidGains(_Strict):
    kp: float = Field(ge=0)
    ki: float = Field(0.0, ge=0)
    kd: float = Field(0.0, ge=0)


class DosingConfig(_Strict):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")
    sensor: int = Field(ge=1)
    output: str
    # 'down': dose while the reading is above target (pH-down acid);
    # 'up': while below (pH-up, nutrient for EC).
    direction: Literal["down", "up"]
    target: float
    deadband: float = Field(0.1, ge=0)
    pump_ml_per_s: float = Field(gt=0, description="the pump's calibration: ml delivered per second running")
    # Dose size: 'proportional' gives gain_ml per unit of error; 'pid' asks simple-pid.
    mode: Literal["proportional", "pid"] = "proportional"
    gain_ml: float | None = Field(None, gt=0)
    pid: PidGains | None = None
    min_dose_ml: float = Field(0.5, gt=0)
    max_dose_ml: float = Field(gt=0)
    max_ml_per_hour: float = Field(gt=0)
    max_ml_per_day: float = Field(gt=0)
    mixing_seconds: float = Field(300.0, ge=0, description="after a dose, readings taken before this has passed do not count")
    stale_after: float = Field(120.0, gt=0)
    # What the controller corrects; its sensor must be of that type (EC also takes a TDS
    # sensor). Without it, a pump's role (ph_down/ph_up/nutrient) says, else any pH, EC or TDS sensor.
    measures: Literal["ph", "ec"] | None = None
    # Readings outside this hold dosing; without it, a default band for the sensor's
    # type and unit applies (core/control/interlocks.py DEFAULT_BANDS, docs/control.md).
    plausible: Range | None = None
    level: LevelGuard | None = None
    # Hold while the sensor has no calibration on record or it is overdue (interlocks.py
    # `Uncalibrated`); false for a probe calibrated in its own hardware (an Atlas board, a Modbus transmitter).
    require_calibration: bool = True

    @model_validator(mode="after")
    def _consistent(self):
        if self.mode == "proportional" and self.gain_ml is None:
            raise ValueError("mode 'proportional' needs gain_ml (ml per unit of error)")
        if self.mode == "pid" and self.pid is None:
            raise ValueError("mode 'pid' needs pid: {kp: ..., ki: ..., kd: ...}")
        if self.min_dose_ml > self.max_dose_ml:
            raise ValueError(f"min_dose_ml ({self.min_dose_ml:g}) is above max_dose_ml ({self.max_dose_ml:g})")
        if not self.max_dose_ml <= self.max_ml_per_hour <= self.max_ml_per_day:
            raise ValueError("limits must satisfy max_dose_ml <= max_ml_per_hour <= max_ml_per_day")
        return self


class ControlConfig(_Strict):
    # Schedules read times of day in this zone (an IANA name such as Europe/Amsterdam).
    timezone: str = "UTC"
    # Seconds between evaluations of every rule and controller.
    period: float = Field(10.0, gt=0, le=600)
    # Log and record what would be switched, switch nothing (commissioning).
    dry_run: bool = False
    # Longest manual override the API accepts, seconds.
    max_override: float = Field(86400.0, gt=0)
    schedules: list[ScheduleConfig] = []
    thresholds: list[ThresholdConfig] = []
    dosing: list[DosingConfig] = []

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}; use an IANA name such as 'Europe/Amsterdam' or 'UTC'") from None
        return value

    @model_validator(mode="before")
    @classmethod
    def _empty_lists(cls, data):
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if v is not None}
        return data


def check_references(control: ControlConfig, outputs: dict, registry) -> list[tuple[tuple, str]]:
    """Problems as (key path under `control`, message): unknown outputs or sensors,
    an output driven by two rules, a dosing pump whose safe state is on."""
    problems: list[tuple[tuple, str]] = []
    known_outputs = ", ".join(sorted(outputs)) or "none"
    known_sensors = ", ".join(str(s) for s in sorted(registry.sensors)) or "none"
    driven: dict[str, str] = {}
    groups = (("schedules", control.schedules), ("thresholds", control.thresholds), ("dosing", control.dosing))
    for section, rules in groups:
        for index, rule in enumerate(rules):
            where = (section, index)
            if rule.output not in outputs:
                problems.append((where + ("output",), f"output '{rule.output}' is not defined under 'outputs:' (defined: {known_outputs})"))
            elif rule.output in driven:
                problems.append((where + ("output",), f"output '{rule.output}' is already driven by {driven[rule.output]}; one rule per output"))
            else:
                driven[rule.output] = f"control.{section}[{index}]"
                if section == "dosing" and outputs[rule.output].safe_state:
                    problems.append((where + ("output",), f"output '{rule.output}' doses, so its safe_state must be off"))
            sensors = [("sensor", getattr(rule, "sensor", None))]
            if section == "dosing" and rule.level is not None:
                sensors.append(("level", rule.level.sensor))
            for key, sensor_id in sensors:
                if sensor_id is not None and registry.sensor(sensor_id) is None:
                    path = where + ((key,) if key == "sensor" else (key, "sensor"))
                    problems.append((path, f"sensor {sensor_id} is not defined under 'devices:' (defined: {known_sensors})"))
    for index, dosing in enumerate(control.dosing):
        problem = _sensor_type_problem(dosing, outputs, registry)
        if problem:
            problems.append((("dosing", index, "sensor"), problem))
    seen: dict[str, int] = {}
    for index, dosing in enumerate(control.dosing):
        if dosing.id in seen:
            problems.append((("dosing", index, "id"), f"dosing id '{dosing.id}' is already used by control.dosing[{seen[dosing.id]}]"))
        seen.setdefault(dosing.id, index)
    return problems


# Sensor types a dosing controller of each kind can read.
DOSED_TYPES = {"ph": ("ph",), "ec": ("ec", "tds")}
_ROLE_MEASURES = {"ph_down": "ph", "ph_up": "ph", "nutrient": "ec"}


def _sensor_type_problem(dosing: DosingConfig, outputs: dict, registry) -> str | None:
    """A pH controller on an EC probe would dose acid against a conductivity reading."""
    sensor = registry.sensor(dosing.sensor)
    if sensor is None:
        return None  # reported as an unknown sensor already
    role = getattr(outputs.get(dosing.output), "role", None)
    kind, because = dosing.measures, "measures: " + str(dosing.measures)
    if kind is None and role in _ROLE_MEASURES:
        kind, because = _ROLE_MEASURES[role], f"its output '{dosing.output}' has role {role}"
    if kind is None:
        if sensor.type in BUILTIN_TYPES and sensor.type not in DOSED_TYPES["ph"] + DOSED_TYPES["ec"]:
            return (f"sensor {dosing.sensor} has type '{sensor.type}'; a dosing controller needs a sensor of type "
                    f"ph, ec or tds ({_matching(registry, ('ph', 'ec', 'tds'))})")
        return None
    if sensor.type in DOSED_TYPES[kind]:
        return None
    name = {"ph": "pH", "ec": "EC"}[kind]
    return (f"sensor {dosing.sensor} has type '{sensor.type}', but this controller doses {name} ({because}); "
            f"point sensor: at a sensor of type {' or '.join(DOSED_TYPES[kind])} ({_matching(registry, DOSED_TYPES[kind])})")


def _matching(registry, types: tuple[str, ...]) -> str:
    ids = [str(s.id) for s in sorted(registry.sensors.values(), key=lambda s: s.id) if s.type in types]
    return ("defined: " + ", ".join(ids)) if ids else "none is defined under 'devices:'"
