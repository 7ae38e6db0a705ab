"""Sensor types: what `type:` may say in a sensor's YAML entry.

Each type brings the unit a sensor of it gets when the YAML names none, what
people call it, its plausible range (the default min/max of its sensors: a
reading outside is refused, see core/validity.py) and its Home Assistant device
class (for MQTT discovery). The hub's own types are `BUILTIN`; plugins add more
through the `register_sensor_types` hook, and the catalog of one hub is the
union (`catalog`), handed to config validation and the registry.
"""

from __future__ import annotations

import difflib
import math
import re
from dataclasses import dataclass


@dataclass(frozen=True)
class SensorType:
    """One kind of sensor.

    name: what `type:` says in YAML (lower case, digits and underscores).
    unit: the unit its sensors get when their YAML names none (such as `mg/L`).
    label: what people call it, the name of its sensors whose YAML gives none.
    low, high: the plausible range; None means unbounded on that side.
    device_class: Home Assistant's sensor device class, or None if it has none.
    """

    name: str
    unit: str
    label: str = ""
    low: float | None = None
    high: float | None = None
    device_class: str | None = None

    @property
    def title(self) -> str:
        return self.label or self.name.replace("_", " ").capitalize()


_NAME = re.compile(r"^[a-z][a-z0-9_]*$")

BUILTIN: tuple[SensorType, ...] = (
    SensorType("temperature", "celsius", "Temperature", device_class="temperature"),
    SensorType("water_temperature", "celsius", "Water temperature", device_class="temperature"),
    SensorType("air_temperature", "celsius", "Air temperature", device_class="temperature"),
    SensorType("humidity", "percent", "Humidity", device_class="humidity"),
    SensorType("ph", "ph", "pH", device_class="ph"),
    SensorType("ec", "mS/cm", "EC", device_class="conductivity"),
    SensorType("tds", "ppm", "TDS"),  # Home Assistant has no device class for these two
    SensorType("water_level", "cm", "Water level", device_class="distance"),
    SensorType("turbidity", "NTU", "Turbidity"),
    SensorType("light", "lux", "Light", device_class="illuminance"),
    # Home Assistant has no device class for these three either.
    SensorType("ppfd", "umol/m2/s", "PPFD"),
    SensorType("vpd", "kPa", "VPD"),
    SensorType("dli", "mol/m2/d", "Daily light integral"),
)

BUILTIN_TYPES: dict[str, SensorType] = {t.name: t for t in BUILTIN}

# Home Assistant's sensor device classes: `SensorDeviceClass` in
# homeassistant/components/sensor/const.py (Home Assistant 2025.x), listed at
# https://www.home-assistant.io/integrations/sensor/#device-class. Any other
# string makes Home Assistant reject the MQTT discovery message of the sensor.
HA_DEVICE_CLASSES = frozenset({
    "absolute_humidity", "apparent_power", "aqi", "area", "atmospheric_pressure", "battery",
    "blood_glucose_concentration", "carbon_dioxide", "carbon_monoxide", "conductivity", "current",
    "data_rate", "data_size", "date", "distance", "duration", "energy", "energy_distance",
    "energy_storage", "enum", "frequency", "gas", "humidity", "illuminance", "irradiance",
    "moisture", "monetary", "nitrogen_dioxide", "nitrogen_monoxide", "nitrous_oxide", "ozone",
    "ph", "pm1", "pm10", "pm25", "pm4", "power", "power_factor", "precipitation",
    "precipitation_intensity", "pressure", "reactive_energy", "reactive_power", "signal_strength",
    "sound_pressure", "speed", "sulphur_dioxide", "temperature", "timestamp",
    "volatile_organic_compounds", "volatile_organic_compounds_parts", "voltage", "volume",
    "volume_flow_rate", "volume_storage", "water", "weight", "wind_direction", "wind_speed",
})


def problem(sensor_type: object) -> str | None:
    """Why the hub cannot use this as a sensor type, or None (checked at start-up)."""
    if not isinstance(sensor_type, SensorType):
        return f"{sensor_type!r} is not a smartanom.SensorType"
    if not isinstance(sensor_type.name, str) or not _NAME.match(sensor_type.name):
        return f"{sensor_type.name!r}: a sensor type's name is lower case letters, digits and underscores"
    if not isinstance(sensor_type.unit, str) or not sensor_type.unit:
        return f"'{sensor_type.name}': unit must be a non-empty string"
    bounds = [b for b in (sensor_type.low, sensor_type.high) if b is not None]
    if any(isinstance(b, bool) or not isinstance(b, (int, float)) or math.isnan(b) for b in bounds):
        return f"'{sensor_type.name}': low and high must be numbers or None"
    if len(bounds) == 2 and sensor_type.low >= sensor_type.high:
        return f"'{sensor_type.name}': low ({sensor_type.low:g}) must be below high ({sensor_type.high:g})"
    device_class = sensor_type.device_class
    if device_class is not None and (not isinstance(device_class, str) or device_class not in HA_DEVICE_CLASSES):
        near = difflib.get_close_matches(str(device_class), HA_DEVICE_CLASSES, n=1)
        hint = f" Did you mean '{near[0]}'?" if near else ""
        return (f"'{sensor_type.name}': device_class {device_class!r} is not one of Home Assistant's sensor "
                f"device classes (see https://www.home-assistant.io/integrations/sensor/#device-class), or None.{hint}")
    return None
