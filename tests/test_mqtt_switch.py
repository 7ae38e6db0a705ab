"""mqtt_switch outputs against a real Mosquitto and a fake Tasmota / ESPHome relay on it."""

import asyncio
import json

import aiomqtt
import pytest

from mosquitto_broker import mosquitto, mqtt_observer, publish  # noqa: F401
from control_harness import until


def hub_yaml(port, extra_output=""):
    return f"""
devices:
  - id: 1
    name: Tank
control:
  period: 0.2
outputs:
  - id: pump
    name: Circulation pump
    type: mqtt_switch
    device: 1
    style: tasmota
    node: tasmota_5C1A2B
    confirm_timeout: 1
  - id: fan
    name: Fan
    type: mqtt_switch
    style: esphome
    node: climate
    switch: fan_relay
    confirm_timeout: 1
{extra_output}
plugins:
  - platform: mqtt
    hub_id: gh1
    broker: {{host: 127.0.0.1, port: {port}}}
    reconnect_min_delay: 0.2
    homeassistant: {{discovery: true, override_minutes: 5}}
"""


class Relay:
    """A relay firmware on the broker: answers each command on its state topic (unless mute)."""

    def __init__(self, port, command, state):
        self.port, self.command, self.state = port, command, state
        self.received: list[str] = []
        self.mute = False
        self.ready = asyncio.Event()
        self.task = asyncio.ensure_future(self._run())

    async def _run(self):
        async with aiomqtt.Client("127.0.0.1", self.port) as client:
            await client.subscribe(self.command, qos=1)
            self.ready.set()
            async for message in client.messages:
                payload = message.payload.decode()
                self.received.append(payload)
                if not self.mute:
                    await client.publish(self.state, payload, qos=1, retain=True)

    async def close(self):
        self.task.cancel()
        # On a loaded machine aiomqtt's goodbye to the broker has been seen to take more
        # than 10 s; the relay is done with either way (the broker is stopped after the test).
        await asyncio.wait({self.task}, timeout=5)


@pytest.fixture
def relay(io_loop):
    """`await relay(port, command_topic, state_topic)` -> a started Relay, closed after the test."""
    made = []

    async def make(*args):
        made.append(Relay(*args))
        await asyncio.wait_for(made[-1].ready.wait(), 10)  # a relay that cannot connect fails the test, not hangs it
        return made[-1]

    yield make
    for r in made:
        io_loop.run_sync(r.close, timeout=10)


@pytest.mark.gen_test(timeout=60)
async def test_switches_are_commanded_confirmed_and_announced(mosquitto, hub_factory, mqtt_observer, relay):
    tasmota = await relay(mosquitto.port, "cmnd/tasmota_5C1A2B/POWER", "stat/tasmota_5C1A2B/POWER")
    esphome = await relay(mosquitto.port, "climate/switch/fan_relay/command", "climate/switch/fan_relay/state")
    observer = await mqtt_observer(mosquitto.port, ["homeassistant/switch/#", "smartanom/gh1/output/#"])
    hub = await hub_factory(hub_yaml(mosquitto.port))
    pump = hub.control.outputs.get("pump")
    # Safe state reached once the broker link is up (retried each period until then).
    await until(lambda: pump.available and pump.on is False and hub.control.outputs.get("fan").on is False)
    assert tasmota.received[-1] == "OFF" and esphome.received[-1] == "OFF"

    await hub.control.override("pump", True, 60, "test")
    assert pump.on is True and tasmota.received[-1] == "ON"

    late = await mqtt_observer(mosquitto.port, ["homeassistant/switch/#"])
    topic, payload, retained = await late.receive("homeassistant/switch/smartanom_gh1/output_pump/config")
    config = json.loads(payload)
    assert retained and config["command_topic"] == "smartanom/gh1/output/pump/set"
    assert config["state_topic"] == "smartanom/gh1/output/pump/state" and config["value_template"] == "{{ value_json.state }}"
    states = []
    while "ON" not in states:
        _, payload, _ = await observer.receive("smartanom/gh1/output/pump/state")
        states.append(json.loads(payload)["state"])

    # Home Assistant turns the switch off: an override through the hub, with an expiry.
    await publish(mosquitto.port, "smartanom/gh1/output/pump/set", "OFF")
    await until(lambda: pump.on is False)
    override = hub.control.overrides["pump"]
    assert override.by == "Home Assistant (MQTT)" and override.on is False
    assert 290 < override.until - hub.control.clock.now() <= 300


@pytest.mark.gen_test(timeout=60)
async def test_a_relay_that_does_not_confirm_makes_the_output_unavailable(mosquitto, hub_factory, relay):
    tasmota = await relay(mosquitto.port, "cmnd/tasmota_5C1A2B/POWER", "stat/tasmota_5C1A2B/POWER")
    hub = await hub_factory(hub_yaml(mosquitto.port))
    pump = hub.control.outputs.get("pump")
    await until(lambda: pump.available and pump.on is False)
    tasmota.mute = True
    await hub.control.override("pump", True, 60, "test")
    assert pump.available is False and "no confirmation on stat/tasmota_5C1A2B/POWER within 1 s" in pump.error
    record = hub.control.journal.actuations(limit=5, output_id="pump")
    assert record[0]["ok"] is False and record[0]["state"] == "on"
    tasmota.mute = False
    await until(lambda: pump.available and pump.on is True)  # the override's state, retried each period


@pytest.mark.gen_test(timeout=60)
async def test_without_a_broker_link_the_output_is_unavailable(hub_factory, tmp_path):
    from smartanom.testing import free_port

    hub = await hub_factory(hub_yaml(free_port()))
    pump = hub.control.outputs.get("pump")
    assert pump.available is False
    assert pump.error in ("OutputError: not connected to the broker", "OutputError: no mqtt plugin instance is running")
