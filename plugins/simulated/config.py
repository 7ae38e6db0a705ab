"""YAML options of a `platform: simulated` entry."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from smartanom import PlatformOptions


class Dropout(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    # Go silent for `duration` seconds after every `every` seconds of readings.
    every: float = Field(gt=0)
    duration: float = Field(gt=0)


class SimulatedOptions(PlatformOptions):
    interval: float = Field(2.0, gt=0, description="seconds between samples of each sensor")
    seed: int | None = Field(None, description="random seed; the same seed gives the same readings")
    sensors: list[int] | None = Field(None, description="sensor ids to feed (default: all of the device's)")
    day_length: float = Field(86400.0, gt=0, description="seconds in a simulated day (shorten for demos)")
    dropout: Dropout | None = None

    def readings_per_second(self, registry) -> float | None:
        device = registry.device(self.device) if self.device is not None else None
        count = len(self.sensors) if self.sensors is not None else len(device.sensors) if device else 0
        return count / self.interval

    @field_validator("sensors")
    @classmethod
    def _sensors_on_device(cls, value, info: ValidationInfo):
        registry = (info.context or {}).get("registry")
        device_id = info.data.get("device")
        if value is None or registry is None or device_id is None:
            return value
        device = registry.device(device_id)
        own = {s.id for s in device.sensors} if device else set()
        stray = [sid for sid in value if sid not in own]
        if stray:
            raise ValueError(f"sensor(s) {stray} are not on device {device_id} (its sensors: {sorted(own)})")
        return value
