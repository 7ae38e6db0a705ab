"""YAML of the `calibration:` and `derived:` sections, and their checks against the devices.

The models validate each key's type and range (pydantic errors are mapped to
file and line by core/config.py); `check()` then verifies what needs the
registry: the sensors named exist, have the right types, a compensation's
thermometer is on the EC probe's device. Every problem names file and line.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from smartanom.errors import ConfigIssue
from smartanom.yamlfile import format_path, locate


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class StabilityConfig(_Section):
    # A point is recorded once the raw readings of the last `seconds` (at least
    # 3 of them) lie within `spread` (raw units) or `spread_percent` of their mean.
    seconds: float = Field(10.0, gt=0)
    spread: float | None = Field(None, gt=0)
    spread_percent: float | None = Field(None, gt=0, le=50)
    # Give up on a point (the user may measure again) after this many seconds.
    timeout: float = Field(120.0, gt=0)

    @model_validator(mode="after")
    def _one_spread(self):
        if self.spread is not None and self.spread_percent is not None:
            raise ValueError("give 'spread' (raw units) or 'spread_percent', not both")
        if self.timeout <= self.seconds:
            # A point needs `seconds` of measuring: it could never be recorded.
            raise ValueError(
                f"timeout ({self.timeout:g} s) must be longer than seconds ({self.seconds:g} s), "
                "or no point can ever be recorded; raise timeout (the default is 120) or shorten seconds"
            )
        return self


class CompensationConfig(_Section):
    temperature_sensor: int = Field(ge=1)
    coefficient: float = Field(0.02, ge=0, le=0.1)  # per C: 0.02 is 2 %/C
    reference: float = Field(25.0, ge=0, le=50)     # C
    # Temperature readings older than this (seconds) are stale; default: the
    # thermometer device's offline_after.
    stale_after: float | None = Field(None, gt=0)


class SensorCalibrationConfig(_Section):
    sensor: int = Field(ge=1)
    raw_unit: Literal["ph", "mV"] | None = None  # pH sensors: what the hardware reports
    reminder_days: float | None = Field(None, gt=0)
    stability: StabilityConfig | None = None
    compensation: CompensationConfig | None = None  # EC sensors only


class CalibrationConfig(_Section):
    reminder_days: float = Field(30.0, gt=0)  # a calibration older than this is due
    # A calibration session nobody advances for this long is cancelled, so a
    # closed terminal never leaves a sensor withheld.
    idle_timeout: float = Field(900.0, gt=0)
    stability: StabilityConfig = StabilityConfig()
    sensors: list[SensorCalibrationConfig] = []


DERIVED_INPUTS = {"tds": ("ec",), "vpd": ("air_temperature", "humidity"), "dli": ("ppfd",)}
# Sensor types each input may have.
INPUT_TYPES = {
    "ec": ("ec",),
    "air_temperature": ("air_temperature", "temperature"),
    "humidity": ("humidity",),
    "ppfd": ("ppfd",),
}


class DerivedConfig(_Section):
    sensor: int = Field(ge=1)  # the derived sensor, defined under devices with type tds, vpd or dli
    kind: Literal["tds", "vpd", "dli"]
    ec: int | None = Field(None, ge=1)
    factor: float = Field(0.5, gt=0, le=1)  # tds: ppm per uS/cm (0.5, 0.64, 0.7)
    air_temperature: int | None = Field(None, ge=1)
    humidity: int | None = Field(None, ge=1)
    leaf_offset: float = Field(0.0, ge=-10, le=10)  # vpd: leaf minus air temperature, C
    ppfd: int | None = Field(None, ge=1)
    # Input readings older than this (seconds) are stale; default: each input device's offline_after.
    max_age: float | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _inputs_given(self):
        missing = [key for key in DERIVED_INPUTS[self.kind] if getattr(self, key) is None]
        if missing:
            raise ValueError(f"a {self.kind} sensor needs {', '.join(repr(k + ': SENSOR_ID') for k in missing)}")
        return self

    def inputs(self) -> dict[str, int]:
        return {key: getattr(self, key) for key in DERIVED_INPUTS[self.kind]}


def check_valid_parts(data, registry, filename: str) -> list[ConfigIssue]:
    """`check` on the entries that are valid on their own, when the file as a whole is
    not: so one pass of check-config reports every problem."""
    section = data.get("calibration") if isinstance(data, dict) else None
    calibration = CalibrationConfig()
    sensors: list[tuple[int, SensorCalibrationConfig]] = []
    if isinstance(section, dict):
        for i, raw in enumerate(section.get("sensors") or []):
            try:
                sensors.append((i, SensorCalibrationConfig.model_validate(raw)))
            except ValidationError:
                pass  # reported by the schema
    derived: list[tuple[int, DerivedConfig]] = []
    for i, raw in enumerate(data.get("derived") or [] if isinstance(data, dict) else []):
        try:
            derived.append((i, DerivedConfig.model_validate(raw)))
        except ValidationError:
            pass
    return check(calibration, [], registry, data, filename, sensors=sensors, derived_entries=derived)


def check(
    calibration: CalibrationConfig, derived: list[DerivedConfig], registry, data, filename: str,
    *, sensors: list | None = None, derived_entries: list | None = None,
) -> list[ConfigIssue]:
    """Problems that need the devices: unknown sensors, wrong types, duplicates.
    `sensors` and `derived_entries` ((index, entry) pairs) override the lists when only some are valid."""
    issues: list[ConfigIssue] = []
    derived_entries = list(enumerate(derived)) if derived_entries is None else derived_entries
    sensors = list(enumerate(calibration.sensors)) if sensors is None else sensors

    def issue(loc: tuple, message: str) -> None:
        issues.append(ConfigIssue(filename, locate(data, loc), format_path(loc), message))

    derived_ids = {d.sensor for _, d in derived_entries}
    seen: dict[int, int] = {}
    for i, entry in derived_entries:
        loc = ("derived", i)
        sensor = registry.sensor(entry.sensor)
        if sensor is None:
            issue(loc + ("sensor",), f"sensor {entry.sensor} is not defined under 'devices:' (add it there with type {entry.kind})")
        elif sensor.type != entry.kind:
            issue(loc + ("sensor",), f"sensor {entry.sensor} has type {sensor.type}; a {entry.kind} derived sensor needs type {entry.kind}")
        if entry.sensor in seen:
            issue(loc + ("sensor",), f"sensor {entry.sensor} is already derived by derived[{seen[entry.sensor]}]")
        seen.setdefault(entry.sensor, i)
        for key, input_id in entry.inputs().items():
            source = registry.sensor(input_id)
            if source is None:
                issue(loc + (key,), f"sensor {input_id} is not defined under 'devices:'")
            elif source.type not in INPUT_TYPES[key]:
                issue(loc + (key,), f"sensor {input_id} has type {source.type}; '{key}' needs a sensor of type {' or '.join(INPUT_TYPES[key])}")
            elif input_id == entry.sensor:
                issue(loc + (key,), "a derived sensor cannot be its own input")
        if entry.kind == "tds" and entry.ec is not None:
            source = registry.sensor(entry.ec)
            from smartanom.derived.formulas import EC_UNITS

            if source is not None and source.type == "ec" and source.unit not in EC_UNITS:
                issue(loc + ("ec",), f"sensor {entry.ec} reports in {source.unit!r}; TDS is computed from {', '.join(EC_UNITS)}")

    seen = {}
    for i, entry in sensors:
        loc = ("calibration", "sensors", i)
        sensor = registry.sensor(entry.sensor)
        if sensor is None:
            issue(loc + ("sensor",), f"sensor {entry.sensor} is not defined under 'devices:'")
            continue
        if entry.sensor in derived_ids:
            issue(loc + ("sensor",), f"sensor {entry.sensor} is derived (computed by the hub): calibrate its inputs instead")
        if entry.sensor in seen:
            issue(loc + ("sensor",), f"sensor {entry.sensor} already has settings in calibration.sensors[{seen[entry.sensor]}]")
        seen.setdefault(entry.sensor, i)
        if entry.raw_unit is not None and sensor.type != "ph":
            issue(loc + ("raw_unit",), f"raw_unit is for pH sensors; sensor {entry.sensor} has type {sensor.type}")
        comp = entry.compensation
        if comp is not None:
            if sensor.type != "ec":
                issue(loc + ("compensation",), f"temperature compensation is for EC sensors; sensor {entry.sensor} has type {sensor.type}")
            thermometer = registry.sensor(comp.temperature_sensor)
            where = loc + ("compensation", "temperature_sensor")
            if thermometer is None:
                issue(where, f"sensor {comp.temperature_sensor} is not defined under 'devices:'")
            elif thermometer.type not in ("water_temperature", "temperature"):
                issue(where, f"sensor {comp.temperature_sensor} has type {thermometer.type}; the water temperature needs type water_temperature or temperature")
            elif thermometer.device is not sensor.device:
                issue(where, f"sensor {comp.temperature_sensor} is on device {thermometer.device.id}; use the water temperature sensor of the EC probe's device {sensor.device.id}")
    return issues
