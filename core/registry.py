"""Devices and sensors, as configured in YAML.

The registry is the hub's read-only map of what exists: every reading on the bus
points at a `Sensor` from here, and every `Sensor` knows its `Device`, so the
fan-out and storage never look anything up on the hot path.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Each sensor type and the unit it gets when the YAML names none.
SENSOR_TYPES: dict[str, str] = {
    "temperature": "celsius",
    "water_temperature": "celsius",
    "air_temperature": "celsius",
    "humidity": "percent",
    "ph": "ph",
    "ec": "mS/cm",
    "tds": "ppm",
    "water_level": "cm",
    "turbidity": "NTU",
    "light": "lux",
    "ppfd": "umol/m2/s",
    "vpd": "kPa",
    "dli": "mol/m2/d",
}

# What people call each type, for sensors whose YAML gives no `name`.
SENSOR_NAMES: dict[str, str] = {
    "temperature": "Temperature",
    "water_temperature": "Water temperature",
    "air_temperature": "Air temperature",
    "humidity": "Humidity",
    "ph": "pH",
    "ec": "EC",
    "tds": "TDS",
    "water_level": "Water level",
    "turbidity": "Turbidity",
    "light": "Light",
    "ppfd": "PPFD",
    "vpd": "VPD",
    "dli": "Daily light integral",
}


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
    low: float = float("-inf")  # the plausible range from the YAML's min/max
    high: float = float("inf")
    computed: bool = False  # a derived sensor: the hub computes it, plugins may not publish it

    def __repr__(self) -> str:
        return f"<Sensor {self.id} {self.type} on device {self.device.id}>"

    def implausible(self, value: float) -> str | None:
        """Why `value` cannot be a reading of this sensor, or None."""
        if self.low <= value <= self.high:
            return None
        return f"value {value:g} is outside sensor {self.id}'s plausible range ({self.low:g} to {self.high:g}, min/max in the config)"


class Registry:
    """Lookup of devices and sensors by id."""

    def __init__(self, devices: list[Device]):
        self.devices: dict[int, Device] = {d.id: d for d in devices}
        self.sensors: dict[int, Sensor] = {s.id: s for d in devices for s in d.sensors}

    @classmethod
    def from_config(cls, device_configs) -> "Registry":
        devices = []
        for dc in device_configs:
            device = Device(id=dc.id, name=dc.name, offline_after=dc.offline_after)
            for sc in dc.sensors:
                device.sensors.append(
                    Sensor(
                        id=sc.id,
                        type=sc.type,
                        unit=sc.unit or SENSOR_TYPES[sc.type],
                        name=sc.name or SENSOR_NAMES[sc.type],
                        device=device,
                        low=float("-inf") if sc.min is None else sc.min,
                        high=float("inf") if sc.max is None else sc.max,
                    )
                )
            devices.append(device)
        return cls(devices)

    def device(self, device_id: int) -> Device | None:
        return self.devices.get(device_id)

    def sensor(self, sensor_id: int) -> Sensor | None:
        return self.sensors.get(sensor_id)
