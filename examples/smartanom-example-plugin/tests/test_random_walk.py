"""Tests of the random_walk platform against a real hub (fixtures from smartanom)."""

import pytest

from smartanom import ConfigError

CONFIG = """
devices:
  - id: 1
    name: Tank
    sensors:
      - {id: 10, type: water_temperature}
plugins:
  - platform: random_walk
    device: 1
    sensor: 10
    start: 22.0
    low: 18.0
    high: 26.0
    interval: 0.05
"""


@pytest.mark.gen_test
async def test_readings_reach_a_websocket_client(hub_factory, ws_client):
    hub = await hub_factory(CONFIG)
    client = await ws_client(hub, "/ws/sensor/10/")
    update = await client.receive(type="sensor_data_update", timeout=5)
    assert update["device_name"] == "Tank"
    assert 18.0 <= update["value"] <= 26.0


@pytest.mark.gen_test
async def test_a_sensor_of_another_device_is_a_config_error(hub_factory):
    with pytest.raises(ConfigError) as error:
        await hub_factory(CONFIG.replace("sensor: 10", "sensor: 11"))
    assert "line 10: plugins[0].sensor: sensor 11 is not on device 1" in str(error.value)
