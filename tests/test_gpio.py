"""The gpio output on gpiozero's MockFactory (the library's own test double for Pi pins)."""

import json

import pytest
from gpiozero import Device
from gpiozero.pins.mock import MockFactory
from tornado.httpclient import AsyncHTTPClient

HUB = """
devices:
  - id: 1
    name: Tank
outputs:
  - id: pump
    name: Circulation pump
    type: gpio
    device: 1
    pin: 17
  - id: lights
    name: Grow lights
    type: gpio
    pin: 27
    active_high: false   # a relay board that switches on when the pin is LOW
"""


@pytest.fixture
def pins():
    previous = Device.pin_factory
    Device.pin_factory = factory = MockFactory()
    yield factory
    factory.reset()
    Device.pin_factory = previous


async def override(hub, output_id, state):
    response = await AsyncHTTPClient().fetch(
        f"{hub.url}/api/outputs/{output_id}/override", method="POST", body=json.dumps({"state": state, "duration": 60}),
        headers={"Content-Type": "application/json"},
    )
    return json.loads(response.body)


@pytest.mark.gen_test(timeout=30)
async def test_relays_start_safe_follow_switches_and_end_safe(hub_factory, pins):
    hub = await hub_factory(HUB)
    pump, lights = pins.pin(17), pins.pin(27)
    assert pump.state is False and lights.state is True  # both off; the active-low one is held HIGH
    assert (await override(hub, "pump", "on"))["state"] == "on"
    assert pump.state is True
    await override(hub, "lights", "on")
    assert lights.state is False
    await hub.stop()
    assert pump.state is False and lights.state is True


@pytest.mark.gen_test(timeout=30)
async def test_a_pin_that_cannot_be_claimed_leaves_the_output_unavailable(hub_factory, pins):
    from gpiozero import DigitalOutputDevice

    squatter = DigitalOutputDevice(17)  # something else holds GPIO17
    hub = await hub_factory(HUB)
    pump = hub.control.outputs.get("pump")
    assert pump.available is False and "could not be set up" in pump.error
    assert hub.control.outputs.get("lights").available is True  # the others work
    squatter.close()
