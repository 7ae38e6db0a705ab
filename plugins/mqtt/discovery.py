"""Home Assistant MQTT discovery: one retained config message per sensor.

Home Assistant reads `<prefix>/sensor/<node_id>/<object_id>/config` and
creates a sensor entity that follows our state topic, grouped under a Home
Assistant device per SmarTanom device, and unavailable when the hub is gone
(last will) or the device is inactive. Units are translated to the spellings
Home Assistant validates for each device_class; a unit it would reject for
the class (a YAML override such as `unit: mV` on a pH sensor) drops the
device_class rather than the entity.
"""

from __future__ import annotations

import json

from smartanom.builtin.mqtt.messages import Message, Topics

# Our unit spelling -> Home Assistant's (None: Home Assistant wants no unit).
_HA_UNITS: dict[str, str | None] = {
    "celsius": "°C",
    "fahrenheit": "°F",
    "percent": "%",
    "ph": None,
    "lux": "lx",
    "mS/cm": "mS/cm",
    "uS/cm": "µS/cm",
    "µS/cm": "µS/cm",
    "cm": "cm",
    "mm": "mm",
    "m": "m",
    "ppm": "ppm",
    "NTU": "NTU",
}

# Units Home Assistant accepts for some device classes; a sensor whose unit is not
# among them is announced without the class (Home Assistant would reject the entity).
# A class not listed (one a plugin's sensor type names) is announced as given.
_CLASS_UNITS: dict[str, set[str | None]] = {
    "temperature": {"°C", "°F"},
    "humidity": {"%"},
    "ph": {None},
    "conductivity": {"mS/cm", "µS/cm"},
    "distance": {"cm", "mm", "m"},
    "illuminance": {"lx"},
}

STATUS_AVAILABILITY = "{{ 'offline' if value_json.status == 'inactive' else 'online' }}"


def ha_unit(unit: str) -> str | None:
    return _HA_UNITS.get(unit, unit)


def node_id(hub_id: str) -> str:
    return f"smartanom_{hub_id}"


def config_topic(prefix: str, hub_id: str, sensor_id: int) -> str:
    return f"{prefix}/sensor/{node_id(hub_id)}/sensor_{sensor_id}/config"


def sensor_config(sensor, hub_id: str, topics: Topics, *, device_availability: bool, version: str) -> dict:
    """The discovery payload of one sensor (see Home Assistant's MQTT sensor docs)."""
    device = sensor.device
    unit = ha_unit(sensor.unit)
    availability = [{"topic": topics.availability}]
    if device_availability:
        availability.append({"topic": topics.device_status(device.id), "value_template": STATUS_AVAILABILITY})
    config = {
        "name": sensor.name,
        "unique_id": f"{node_id(hub_id)}_sensor_{sensor.id}",
        "state_topic": topics.sensor_state(sensor.id),
        "value_template": "{{ value_json.value }}",
        "state_class": "measurement",
        "availability": availability,
        "availability_mode": "all",
        "device": {
            "identifiers": [f"{node_id(hub_id)}_device_{device.id}"],
            "name": device.name,
            "manufacturer": "SmarTanom",
            "model": "SmarTanom Hub device",
        },
        "origin": {"name": "SmarTanom Hub", "sw_version": version},
    }
    if unit is not None:
        config["unit_of_measurement"] = unit
    device_class = sensor.device_class  # from the sensor's type (core/sensortypes.py)
    if device_class is not None and unit in _CLASS_UNITS.get(device_class, {unit}):
        config["device_class"] = device_class
    return config


def discovery_messages(registry, hub_id: str, prefix: str, topics: Topics, *, device_availability: bool, version: str) -> list[Message]:
    return [
        Message(
            config_topic(prefix, hub_id, sensor.id),
            json.dumps(sensor_config(sensor, hub_id, topics, device_availability=device_availability, version=version)),
            1,
            True,  # retained, so Home Assistant finds the entities whenever it starts
        )
        for sensor in registry.sensors.values()
    ]
