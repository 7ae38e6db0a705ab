"""The YAML options of a `platform: random_walk` entry."""

from pydantic import Field, ValidationInfo, field_validator, model_validator

from smartanom import PlatformOptions


class RandomWalkOptions(PlatformOptions):
    sensor: int
    interval: float = Field(1.0, gt=0)
    start: float = 0.0
    step: float = Field(0.1, gt=0)
    low: float = -100.0
    high: float = 100.0
    seed: int | None = None

    @field_validator("sensor")
    @classmethod
    def _sensor_on_device(cls, sensor: int, info: ValidationInfo) -> int:
        registry = info.context["registry"]
        device = registry.device(info.data.get("device"))
        if device is not None and sensor not in [s.id for s in device.sensors]:
            raise ValueError(f"sensor {sensor} is not on device {device.id}")
        return sensor

    @model_validator(mode="after")
    def _start_within_bounds(self):
        if not self.low <= self.start <= self.high:
            raise ValueError(f"start {self.start} is outside low..high ({self.low}..{self.high})")
        return self
