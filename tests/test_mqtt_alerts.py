"""Alerts on MQTT (plugins/mqtt/alerts.py) against a real Mosquitto: each alert rule is a
Home Assistant binary_sensor of device class `problem` whose state follows the alert."""

import json

import pytest

from mosquitto_broker import mosquitto, mqtt_observer  # noqa: F401

HUB = """
alerts:
  for: 0
  no_data_after: 0
devices:
  - id: 1
    name: Tank A
    profile: lettuce
    sensors:
      - {{id: 1, type: ph}}
      - {{id: 2, type: light}}
plugins:
  - platform: mqtt
    hub_id: gh1
    broker: {{host: 127.0.0.1, port: {port}}}
    reconnect_min_delay: 0.1
    homeassistant: {{discovery: true}}
"""


@pytest.mark.gen_test(timeout=30)
async def test_each_rule_is_a_problem_binary_sensor_that_follows_its_alert(mosquitto, hub_factory, mqtt_observer):
    observer = await mqtt_observer(mosquitto.port, ["homeassistant/binary_sensor/#", "smartanom/gh1/alert/#"])
    hub = await hub_factory(HUB.format(port=mosquitto.port))
    configs = {}
    for _ in range(2):  # pH out of range, Tank A inactive (light has no range)
        topic, payload, _ = await observer.receive("homeassistant/binary_sensor/#")
        configs[topic] = json.loads(payload)
    assert sorted(configs) == [
        "homeassistant/binary_sensor/smartanom_gh1/device_1_inactive/config",
        "homeassistant/binary_sensor/smartanom_gh1/sensor_1_range/config",
    ]
    ph = configs["homeassistant/binary_sensor/smartanom_gh1/sensor_1_range/config"]
    assert ph["device_class"] == "problem" and ph["name"] == "pH out of range"
    assert ph["state_topic"] == ph["json_attributes_topic"] == "smartanom/gh1/alert/sensor_1_range/state"
    assert ph["device"] == {"identifiers": ["smartanom_gh1_device_1"]}
    assert (await observer.receive_json("smartanom/gh1/alert/sensor_1_range/state"))["problem"] == "OFF"

    hub.accept_reading(hub.registry.sensor(1), 7.4, None)
    on = await observer.receive_json("smartanom/gh1/alert/sensor_1_range/state")
    assert (on["problem"], on["severity"], on["value"], on["state"]) == ("ON", "critical", 7.4, "firing")
    (alert,) = hub.alerts.active()
    hub.alerts.acknowledge(alert.id, "Ana")
    acked = await observer.receive_json("smartanom/gh1/alert/sensor_1_range/state")
    assert (acked["problem"], acked["state"]) == ("ON", "acknowledged")  # still a problem until it resolves
    hub.accept_reading(hub.registry.sensor(1), 6.0, None)
    off = await observer.receive_json("smartanom/gh1/alert/sensor_1_range/state")
    assert (off["problem"], off["state"]) == ("OFF", "resolved")

    # Another subsystem's alert is announced the first time it is raised.
    # Retained, so a Home Assistant that starts later finds the rules and their states.
    late = await mqtt_observer(mosquitto.port, ["homeassistant/binary_sensor/#", "smartanom/gh1/alert/#"])
    retained = {(await late.receive())[0] for _ in range(4)}
    assert "homeassistant/binary_sensor/smartanom_gh1/sensor_1_range/config" in retained
    assert "smartanom/gh1/alert/sensor_1_range/state" in retained
    hub.alerts.raise_alert("sensor_1_calibration_due", "calibration_due", "pH probe calibration is due", device_id=1, sensor_id=1)
    topic, payload, _ = await observer.receive("homeassistant/binary_sensor/#")
    assert topic.endswith("/sensor_1_calibration_due/config") and json.loads(payload)["device_class"] == "problem"
    assert (await observer.receive_json("smartanom/gh1/alert/sensor_1_calibration_due/state"))["problem"] == "ON"
