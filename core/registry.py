"""Devices and sensors, as configured in YAML.

The registry is the hub's read-only map of what exists: every reading on the bus
points at a `Sensor` from here, and every `Sensor` knows its `Device`, so the
fan-out and storage never look anything up on the hot path.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from smartanom.sensortypes import BUILTIN_TYPES, SensorType

# Each built-in sensor type and the unit it gets when the YAML names none
# (plugins add types: core/sensortypes.py).
SENSOR_TYPES: dict[str, str] = {name: t.unit for name, t in BUILTIN_TYPES.items()}


@dataclass(eq=False)
class Device:
    id: int
    name: str
    offline_after: float
    sensors: list["Sensor"] = field(default_factory=list)

    def __repr__(self) -> str:
        return f"<Device {self.id} {self.name!r}>"


@dataclass(eq=False)
class Sensor:
    id: int
    type: str
    unit: str
    name: str
    device: Device
    low: float = float("-inf")  # the plausible range: the YAML's min/max, else the type's
    high: float = float("inf")
    device_class: str | None = None  # Home Assistant's, from the sensor type
    computed: bool = False  # a derived sensor: the hub computes it, plugins may not publish it

    def __repr__(self) -> str:
        return f"<Sensor {self.id} {self.type} on device {self.device.id}>"


class Registry:
    """Lookup of devices and sensors by id."""

    def __init__(self, devices: list[Device]):
        self.devices: dict[int, Device] = {d.id: d for d in devices}
        self.sensors: dict[int, Sensor] = {s.id: s for d in devices for s in d.sensors}

    @classmethod
    def from_config(cls, device_configs, sensor_types: dict[str, SensorType] = BUILTIN_TYPES) -> "Registry":
        devices = []
        for dc in device_configs:
            device = Device(id=dc.id, name=dc.name, offline_after=dc.offline_after)
            for sc in dc.sensors:
                kind = sensor_types[sc.type]
                device.sensors.append(
                    Sensor(
                        id=sc.id,
                        type=sc.type,
                        unit=sc.unit or kind.unit,
                        name=sc.name or kind.title,
                        device=device,
                        low=_bound(sc.min, kind.low, float("-inf")),
                        high=_bound(sc.max, kind.high, float("inf")),
                        device_class=kind.device_class,
                    )
                )
            devices.append(device)
        return cls(devices)

    def device(self, device_id: int) -> Device | None:
        return self.devices.get(device_id)

    def sensor(self, sensor_id: int) -> Sensor | None:
        return self.sensors.get(sensor_id)


def _bound(configured: float | None, of_type: float | None, unbounded: float) -> float:
    return configured if configured is not None else (of_type if of_type is not None else unbounded)
