"""YAML options of a `platform: simulated` entry."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from smartanom import PlatformOptions


class Dropout(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    # Go silent for `duration` seconds after every `every` seconds of readings.
    every: float = Field(gt=0)
    duration: float = Field(gt=0)


class RawSignal(BaseModel):
    """Simulate an uncalibrated probe: it reports scale * true value + offset.

    While the sensor is being calibrated, the true value is the standard the
    probe is in (the hub says which), so a calibration finds scale and offset.
    """

    model_config = ConfigDict(extra="forbid", strict=True)
    sensor: int
    scale: float = Field(1.0, gt=0)
    offset: float = 0.0


class SimulatedOptions(PlatformOptions):
    interval: float = Field(2.0, gt=0, description="seconds between samples of each sensor")
    seed: int | None = Field(None, description="random seed; the same seed gives the same readings")
    sensors: list[int] | None = Field(None, description="sensor ids to feed (default: all of the device's)")
    day_length: float = Field(86400.0, gt=0, description="seconds in a simulated day (shorten for demos)")
    dropout: Dropout | None = None
    tank: bool = Field(False, description="pH, EC and water level come from the tank model that `type: simulated` outputs of this device act on")
    raw: list[RawSignal] = Field([], description="sensors whose probe reads offset and scaled (raw mode)")

    def readings_per_second(self, registry) -> float | None:
        device = registry.device(self.device) if self.device is not None else None
        count = len(self.sensors) if self.sensors is not None else len(device.sensors) if device else 0
        return count / self.interval

    @field_validator("sensors")
    @classmethod
    def _sensors_on_device(cls, value, info: ValidationInfo):
        _on_device(value or [], info, "")
        return value

    @field_validator("raw")
    @classmethod
    def _raw_on_device(cls, value, info: ValidationInfo):
        _on_device([r.sensor for r in value], info, "raw: ")
        return value


def _on_device(sensor_ids: list[int], info: ValidationInfo, what: str) -> None:
    registry = (info.context or {}).get("registry")
    device_id = info.data.get("device")
    if not sensor_ids or registry is None or device_id is None:
        return
    device = registry.device(device_id)
    own = {s.id for s in device.sensors} if device else set()
    stray = [sid for sid in sensor_ids if sid not in own]
    if stray:
        raise ValueError(f"{what}sensor(s) {stray} are not on device {device_id} (its sensors: {sorted(own)})")
