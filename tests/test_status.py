"""core/status.py: device status derived from readings, timeouts, clients and plugins."""

import asyncio

import pytest

HUB = """
devices:
  - id: 1
    name: Tank
    offline_after: 0.5
    sensors: [{id: 1, type: ph}]
  - id: 2
    name: Other
    offline_after: 0.5
    sensors: [{id: 2, type: ec}]
"""


@pytest.mark.gen_test(timeout=15)
async def test_active_then_inactive_after_offline_after_then_active_again(hub_factory, ws_client):
    hub = await hub_factory(HUB)
    watcher = await ws_client(hub, "/ws/device/1/")
    sender = await ws_client(hub, "/ws/sensor/1/")
    assert hub.status.of(1).value == "inactive"  # nothing heard yet

    await sender.send({"type": "sensor_data", "value": 6.0})
    first = await watcher.receive()
    assert first["type"] == "device_status" and first["status"] == "active"
    assert (await watcher.receive())["type"] == "sensor_data_update"  # status change comes first

    went_inactive = await watcher.receive(type="device_status", timeout=5)
    assert went_inactive["status"] == "inactive" and went_inactive["device_name"] == "Tank"

    await sender.send({"type": "sensor_data", "value": 6.1})
    assert (await watcher.receive(type="device_status"))["status"] == "active"


@pytest.mark.gen_test(timeout=15)
async def test_each_change_is_published_once(hub_factory, ws_client):
    # A long offline_after: the device cannot time out while the test listens, however slow the machine.
    hub = await hub_factory(HUB.replace("offline_after: 0.5", "offline_after: 60"))
    watcher = await ws_client(hub, "/ws/sensor-data/")
    sender = await ws_client(hub, "/ws/sensor/1/")
    for value in (6.0, 6.1, 6.2):
        await sender.send({"type": "sensor_data", "value": value})
    messages = []
    while sum(m["type"] == "sensor_data_update" for m in messages) < 3:
        messages.append(await watcher.receive())
    messages += await watcher.nothing_within(0.3)  # a late duplicate would show here
    statuses = [m for m in messages if m["type"] == "device_status"]
    assert [(m["device_id"], m["status"]) for m in statuses] == [(1, "active")]


@pytest.mark.gen_test(timeout=15)
async def test_maintenance_is_sticky_until_a_client_changes_it(hub_factory, ws_client):
    hub = await hub_factory(HUB)
    device = await ws_client(hub, "/ws/device/1/")
    reply = await device.request({"type": "device_status", "status": "maintenance"}, type="device_status")
    assert reply["status"] == "maintenance"
    await device.send({"type": "sensor_data", "sensor_id": 1, "value": 6.0})
    # Device 2, with the same offline_after, fed just after: once it has gone inactive,
    # device 1's window has passed too, and the offline timer has looked at both.
    witness = await ws_client(hub, "/ws/device/2/")
    await witness.send({"type": "sensor_data", "sensor_id": 2, "value": 1.0})
    assert (await witness.receive(type="device_status"))["status"] == "active"
    assert (await witness.receive(type="device_status", timeout=5))["status"] == "inactive"
    assert hub.status.of(1).value == "maintenance"
    assert (await device.request({"type": "device_status", "status": "active"}, type="device_status"))["status"] == "active"


@pytest.mark.gen_test(timeout=15)
async def test_setting_the_current_status_is_confirmed_to_the_sender_only(hub_factory, ws_client):
    hub = await hub_factory(HUB)
    other = await ws_client(hub, "/ws/sensor-data/")
    device = await ws_client(hub, "/ws/device/2/")
    reply = await device.request({"type": "device_status", "status": "inactive"}, type="device_status")
    assert reply["status"] == "inactive"
    assert await other.nothing_within(0.3) == []


@pytest.mark.gen_test(timeout=15)
async def test_status_set_on_the_all_stream_with_device_id(hub_factory, ws_client):
    hub = await hub_factory(HUB)
    client = await ws_client(hub, "/ws/sensor-data/")
    reply = await client.request({"type": "device_status", "device_id": 2, "status": "maintenance"}, type="device_status")
    assert (reply["device_id"], reply["status"]) == (2, "maintenance")
    assert hub.status.of(2).value == "maintenance"


@pytest.mark.gen_test(timeout=15)
async def test_plugin_reporting_hardware_gone_makes_device_inactive_at_once(hub_factory, ws_client):
    # offline_after is a minute: an 'inactive' within seconds can only come from the plugin's report.
    hub = await hub_factory(HUB.replace("offline_after: 0.5", "offline_after: 60"))
    watcher = await ws_client(hub, "/ws/device/2/")
    await watcher.send({"type": "sensor_data", "sensor_id": 2, "value": 1.2})
    assert (await watcher.receive(type="device_status"))["status"] == "active"
    hub.status.set_available(hub.registry.device(2), False, "USB unplugged")
    assert (await watcher.receive(type="device_status", timeout=5))["status"] == "inactive"
