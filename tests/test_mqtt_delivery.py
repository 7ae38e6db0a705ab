"""What the mqtt platform promises about each message, against a real Mosquitto on a free port:
nothing lost when the receiving hub restarts under load (manual QoS 1 acks), the same
millisecond on both sides of a bridge, Tasmota's local `Time` read in its zone, and no
Home Assistant announcement of entities that would never get a value.
"""

from __future__ import annotations

import asyncio
import json
import random
import sqlite3
import time
from datetime import datetime
from zoneinfo import ZoneInfo

import aiomqtt
import pytest

from smartanom.protocol import format_timestamp
from smartanom.builtin.mqtt.config import MqttOptions
from smartanom.builtin.mqtt.inbound import routes_from
from smartanom.builtin.mqtt.messages import Topics, reading_message
from smartanom.events import SensorReading
from mosquitto_broker import mosquitto, mqtt_observer, publish  # noqa: F401
from test_mqtt_bridge import hub_yaml, stats

CENTRAL = """
storage: {{path: {db}}}
devices:
  - id: 10
    name: Greenhouse 1 tank
    sensors:
      - {{id: 101, type: tds}}
plugins:
  - platform: mqtt
    hub_id: central
    broker: {{host: 127.0.0.1, port: {port}, persistent_session: true, client_id: central-hub}}
    reconnect_min_delay: 0.1
    publish_readings: false
    edge_hubs:
      - hub_id: greenhouse-1
        sensors: {{1: 101}}
"""


async def until(condition, what: str, timeout: float = 20.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await condition():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def stored(db) -> list[float]:
    with sqlite3.connect(db) as conn:
        return [v for (v,) in conn.execute("SELECT value FROM readings WHERE sensor_id = 101")]


@pytest.mark.gen_test(timeout=180)
async def test_a_central_hub_restarted_ten_times_under_load_loses_no_reading(mosquitto, hub_factory, tmp_path):
    db = tmp_path / "central.db"
    config = CENTRAL.format(db=db, port=mosquitto.port)
    taken: set[float] = set()  # values put on a central hub's bus, over all its lives

    async def start():
        hub = await hub_factory(config)
        hub.bus.subscribe(SensorReading, lambda r: taken.add(r.value))
        return hub

    first = await start()  # creates the persistent session before the edge publishes
    await until(lambda: _connected(first), "the central hub connected")

    # The edge: readings 0, 1, 2, ... as an edge hub publishes them, QoS 1, about 300 a second.
    sent: list[int] = []
    done = asyncio.Event()

    async def edge():
        async with aiomqtt.Client("127.0.0.1", mosquitto.port, identifier="edge-greenhouse-1") as client:
            n = 0
            while not done.is_set():
                payload = json.dumps({"value": n, "timestamp": format_timestamp(time.time())})
                await client.publish("smartanom/greenhouse-1/sensor/1/state", payload, qos=1)
                sent.append(n)
                n += 1
                await asyncio.sleep(0.003)

    publisher = asyncio.ensure_future(edge())
    hub = first
    for restart in range(10):
        # Stop while messages are flowing in, then start a new hub on the same session and database.
        received = (await stats(hub))["received"]
        await until(lambda: _received_more(hub, received + 50), f"traffic before restart {restart + 1}")
        await hub.stop()
        hub = await start()
    done.set()
    await publisher

    async def all_taken():
        return taken >= set(map(float, sent))
    try:
        await until(all_taken, "all readings taken", timeout=30)
    except AssertionError:
        missing = sorted(set(map(float, sent)) - taken)
        raise AssertionError(f"{len(missing)} of {len(sent)} readings lost over 10 restarts: {missing[:20]}") from None
    await hub.stop()
    values = stored(db)
    assert sorted(set(values)) == [float(n) for n in sent]  # every reading, none lost
    print(f"\n{len(sent)} readings sent over 10 restarts, {len(set(values))} stored, {len(values) - len(set(values))} twice")


async def _connected(hub) -> bool:
    return (await stats(hub))["connected"]


async def _received_more(hub, count: int) -> bool:
    return (await stats(hub))["received"] >= count


def test_a_bridged_timestamp_keeps_its_millisecond():
    # The edge's payload (messages.py) read by the central's route (inbound.py), compared with
    # what the edge itself shows (WebSocket and HTTP API format): the same millisecond, always.
    options = MqttOptions.model_validate({
        "platform": "mqtt", "hub_id": "central",
        "edge_hubs": [{"hub_id": "edge", "sensors": {1: 1}}],
    })
    (route,) = routes_from(options)["smartanom/edge/sensor/1/state"]
    sensor = type("S", (), {"id": 1, "type": "ph", "unit": "ph", "device": type("D", (), {"id": 1, "name": "Tank"})()})()
    rng = random.Random(13)
    for _ in range(20000):
        epoch = 1.7e9 + rng.random() * 1e8
        message = reading_message(Topics("smartanom", "edge"), SensorReading(sensor, 6.5, epoch, ""), 1, False)
        _value, bridged = route.extract(message.payload.encode())
        assert format_timestamp(bridged) == format_timestamp(epoch), epoch


@pytest.mark.gen_test(timeout=30)
async def test_tasmota_local_time_is_read_in_its_zone(mosquitto, hub_factory):
    extra = """    subscribe:
      - topic: tele/climate-1/SENSOR
        sensor: 4
        json_path: AM2301.Humidity
        timestamp_path: Time
        timezone: Europe/Madrid
      - topic: tele/climate-1/SENSOR
        sensor: 5
        json_path: AM2301.Humidity
"""
    hub = await hub_factory(hub_yaml(mosquitto.port, extra))
    await until(lambda: _connected(hub), "connected")
    readings = []
    hub.bus.subscribe(SensorReading, readings.append)
    local = datetime.now(ZoneInfo("Europe/Madrid")).replace(microsecond=0, tzinfo=None)
    arrived = time.time()
    await publish(mosquitto.port, "tele/climate-1/SENSOR", json.dumps({"Time": local.isoformat(), "AM2301": {"Temperature": 24.1, "Humidity": 64}}))

    async def both():
        return len(readings) >= 2
    await until(both, "two readings")
    by_sensor = {r.sensor.id: r.timestamp for r in readings}
    # Read in Madrid's zone, the device's local time is the real moment (to the second it was cut to).
    assert abs(by_sensor[4] - arrived) < 2
    assert by_sensor[4] == datetime.fromisoformat(local.isoformat()).replace(tzinfo=ZoneInfo("Europe/Madrid")).timestamp()
    # Without timestamp_path: the arrival time.
    assert abs(by_sensor[5] - arrived) < 2


@pytest.mark.gen_test(timeout=30)
async def test_no_home_assistant_announcements_without_readings(mosquitto, hub_factory, mqtt_observer):
    # Sensor entities only: alert binary_sensors have states of their own (publish_alerts,
    # tests/test_mqtt_alerts.py), so they are announced with or without readings.
    observer = await mqtt_observer(mosquitto.port, ["homeassistant/sensor/#", "smartanom/gh1/device/+/status"])
    hub = await hub_factory(hub_yaml(mosquitto.port, "    publish_readings: false\n    homeassistant: {discovery: true}"))
    await until(lambda: _connected(hub), "connected")
    # Status messages follow the discovery messages on each connection: once they are here,
    # any announcement would have come before them.
    topic, _payload, _retain = await observer.receive()
    assert topic.startswith("smartanom/gh1/device/"), topic
    assert not any(m.topic.value.startswith("homeassistant/") for m in observer._unread)
    assert (await stats(hub))["connected"]
