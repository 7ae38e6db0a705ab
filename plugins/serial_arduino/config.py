"""YAML options of a `platform: serial_arduino` entry (docs/serial-arduino.md)."""

from __future__ import annotations

import os
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, ValidationInfo, field_validator, model_validator

from smartanom import PlatformOptions
from smartanom.builtin.serial_arduino.parser import normalize_key


def _sensor_on_device(sensor_id: int, info: ValidationInfo) -> int:
    registry = (info.context or {}).get("registry")
    device_id = info.data.get("device")
    if registry is None or device_id is None or registry.device(device_id) is None:
        return sensor_id  # the core reports a missing or unknown device itself
    own = sorted(s.id for s in registry.device(device_id).sensors)
    if sensor_id not in own:
        raise ValueError(f"sensor {sensor_id} is not on device {device_id} (its sensors: {own})")
    return sensor_id


class SerialArduinoOptions(PlatformOptions):
    port: str = Field(description="serial device; prefer the stable /dev/serial/by-id/... path")
    baudrate: int = Field(9600, gt=0, description="must match Serial.begin() in the sketch")
    bytesize: Literal[5, 6, 7, 8] = 8
    parity: Literal["none", "even", "odd", "mark", "space"] = "none"
    stopbits: Literal[1, 1.5, 2] = 1
    rtscts: bool = False
    xonxoff: bool = False
    # Key in the Arduino's lines -> sensor id of this entry's device.
    sensors: dict[str, Annotated[int, AfterValidator(_sensor_on_device)]] = Field(min_length=1)
    checksum: Literal["optional", "required"] = "optional"
    max_line_length: int = Field(512, ge=16, le=65536, description="longer lines are counted and dropped")
    # Reconnect after an unplug or a failed open: wait reconnect_min seconds, doubling up to reconnect_max.
    reconnect_min: float = Field(1.0, gt=0)
    reconnect_max: float = Field(30.0, gt=0)

    def exclusive_resources(self) -> dict[str, str]:
        return {"port": f"serial port {os.path.realpath(self.port)}"}

    @field_validator("port")
    @classmethod
    def _device_path(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError(
                f"'{value}' is not a device path; give the full path, best the stable one under "
                "/dev/serial/by-id/ (list them with: ls -l /dev/serial/by-id/)"
            )
        return value

    @field_validator("sensors")
    @classmethod
    def _keys_unique(cls, value: dict[str, int]) -> dict[str, int]:
        normalized: dict[str, int] = {}
        spelled: dict[str, str] = {}
        for key, sensor_id in value.items():
            norm = normalize_key(key)
            if not norm:
                raise ValueError("a key in sensors is empty")
            if norm in normalized:
                raise ValueError(f"keys '{spelled[norm]}' and '{key}' are the same (keys ignore case and surrounding spaces)")
            normalized[norm], spelled[norm] = sensor_id, key
        return normalized

    @model_validator(mode="after")
    def _backoff_order(self):
        if self.reconnect_max < self.reconnect_min:
            raise ValueError(f"reconnect_max ({self.reconnect_max:g}) is below reconnect_min ({self.reconnect_min:g})")
        return self
