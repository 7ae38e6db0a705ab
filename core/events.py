"""The typed events that travel on the bus.

A reading flows plugin (or WebSocket client) -> bus -> storage and WebSocket
fan-out; a device status change takes the same road. Events are immutable and
carry references into the registry so that no listener has to look anything up.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from smartanom.registry import Device, Sensor


class DeviceStatus(str, enum.Enum):
    ACTIVE = "active"
    INACTIVE = "inactive"
    MAINTENANCE = "maintenance"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True, slots=True)
class SensorReading:
    """One accepted value of one sensor. `timestamp` is UTC seconds since the epoch."""

    sensor: Sensor
    value: float
    timestamp: float
    source: str = ""
    # Set when the hub calibrated the value (core/calibration): what the
    # hardware said, and the calibrations row that turned it into `value`.
    raw: float | None = None
    calibration_id: int | None = None


@dataclass(frozen=True, slots=True)
class DeviceStatusChanged:
    """A device's derived status changed (published once per change)."""

    device: Device
    status: DeviceStatus
    timestamp: float
    previous: DeviceStatus | None = None
    reason: str = ""


@dataclass(frozen=True, slots=True)
class AlertChanged:
    """An alert started, escalated, was acknowledged or resolved (core/alerts/).

    `alert` is the alert as GET /api/alerts shows it (id, device_id, sensor_id,
    severity, state, value, threshold, message, ...); `key` names its rule, stable
    across episodes (e.g. sensor_2_range), for a plugin that mirrors rules elsewhere.
    """

    event: str  # started | escalated | acknowledged | resolved
    key: str
    alert: dict
