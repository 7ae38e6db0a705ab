"""A plugin's sensor types through MQTT discovery and readings, end to end: a real
Mosquitto broker and a real MQTT client in Home Assistant's place."""

import asyncio
import json

import pytest

from smartanom import Platform, SensorType, hookimpl
from mosquitto_broker import mosquitto, mqtt_observer  # noqa: F401


class Gas:
    @hookimpl
    def register_sensor_types(self):
        return [
            SensorType("co2", "ppm", "CO2", low=0, high=10000, device_class="carbon_dioxide"),
            SensorType("orp", "mV", "ORP", low=-2000, high=2000),
        ]

    @hookimpl
    def register_platforms(self):
        async def run(ctx):
            while True:
                ctx.publish_reading(7, 812.0)
                await asyncio.sleep(0.1)

        return [Platform("co2_probe", run=run)]


def hub_yaml(port: int) -> str:
    return f"""
devices:
  - id: 1
    name: Grow room
    sensors:
      - {{id: 7, type: co2}}
      - {{id: 8, type: orp}}
plugins:
  - platform: co2_probe
    device: 1
  - platform: mqtt
    hub_id: gh1
    broker: {{host: 127.0.0.1, port: {port}}}
    reconnect_min_delay: 0.1
    homeassistant: {{discovery: true}}
"""


@pytest.mark.gen_test(timeout=30)
async def test_a_plugins_sensor_types_are_announced_and_published_through_a_real_broker(mosquitto, hub_factory, mqtt_observer):
    observer = await mqtt_observer(mosquitto.port, ["homeassistant/sensor/#", "smartanom/gh1/sensor/#"])
    await hub_factory(hub_yaml(mosquitto.port), plugins=[("gas", Gas())])
    co2 = await observer.receive_json("homeassistant/sensor/smartanom_gh1/sensor_7/config")
    assert co2 == {
        "name": "CO2",
        "unique_id": "smartanom_gh1_sensor_7",
        "state_topic": "smartanom/gh1/sensor/7/state",
        "value_template": "{{ value_json.value }}",
        "state_class": "measurement",
        "device_class": "carbon_dioxide",
        "unit_of_measurement": "ppm",
        "availability": [
            {"topic": "smartanom/gh1/availability"},
            {"topic": "smartanom/gh1/device/1/status", "value_template": "{{ 'offline' if value_json.status == 'inactive' else 'online' }}"},
        ],
        "availability_mode": "all",
        "device": {"identifiers": ["smartanom_gh1_device_1"], "name": "Grow room", "manufacturer": "SmarTanom", "model": "SmarTanom Hub device"},
        "origin": {"name": "SmarTanom Hub", "sw_version": co2["origin"]["sw_version"]},
    }
    orp = await observer.receive_json("homeassistant/sensor/smartanom_gh1/sensor_8/config")
    # No Home Assistant device class for ORP: announced with its unit and no class.
    assert (orp["name"], orp["unit_of_measurement"], "device_class" in orp) == ("ORP", "mV", False)
    state = await observer.receive_json("smartanom/gh1/sensor/7/state")
    assert (state["value"], state["unit"], state["sensor_type"]) == (812.0, "ppm", "co2")
