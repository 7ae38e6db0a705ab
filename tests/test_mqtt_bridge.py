"""The mqtt platform (plugins/mqtt/bridge.py) against a real Mosquitto on a free port.

Readings go in through the hub's real WebSocket API or a real MQTT client
and are watched with another real MQTT client.
"""

import asyncio
import json
import logging
import signal
import time

import pytest
import tornado.httpclient

from smartanom.testing import HubProcess
from mosquitto_broker import mosquitto, mqtt_observer, publish  # noqa: F401

TIMEOUT = 30  # seconds for a whole test; each wait inside has its own, shorter bound


def hub_yaml(port: int, extra: str = "", hub_id: str = "gh1") -> str:
    return f"""
devices:
  - id: 1
    name: Tank A
    sensors:
      - {{id: 1, type: water_temperature}}
      - {{id: 2, type: ph}}
      - {{id: 3, type: ec}}
  - id: 2
    name: Climate
    sensors:
      - {{id: 4, type: humidity}}
      - {{id: 5, type: tds}}
      - {{id: 6, type: temperature, unit: fahrenheit}}
plugins:
  - platform: mqtt
    name: bridge
    hub_id: {hub_id}
    broker: {{host: 127.0.0.1, port: {port}}}
    reconnect_min_delay: 0.1
    reconnect_max_delay: 0.5
{extra}
"""


async def send_reading(client, sensor_id: int, value: float, timestamp: str | None = None) -> dict:
    message = {"type": "sensor_data", "sensor_id": sensor_id, "value": value}
    if timestamp:
        message["timestamp"] = timestamp
    return await client.request(message, type="sensor_data_update")


async def stats(hub) -> dict:
    response = await tornado.httpclient.AsyncHTTPClient().fetch(f"{hub.url}/api/plugins")
    (instance,) = [i for i in json.loads(response.body)["instances"] if i["platform"] == "mqtt"]
    return instance["stats"]


async def wait_for_stats(hub, predicate, timeout: float = 10.0) -> dict:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        current = await stats(hub)
        if predicate(current):
            return current
        if loop.time() > deadline:
            raise AssertionError(f"stats never matched: {current}")
        await asyncio.sleep(0.05)


@pytest.mark.gen_test(timeout=TIMEOUT)
async def test_readings_and_status_are_published_as_documented(mosquitto, hub_factory, ws_client, mqtt_observer):
    observer = await mqtt_observer(mosquitto.port, ["smartanom/#"])
    hub = await hub_factory(hub_yaml(mosquitto.port))
    assert await observer.receive("smartanom/gh1/availability") == ("smartanom/gh1/availability", "online", False)
    await wait_for_stats(hub, lambda s: s["connected"])

    client = await ws_client(hub, "/ws/sensor-data/")
    await send_reading(client, 2, 6.35, "2025-09-11T15:30:00Z")
    assert await observer.receive_json("smartanom/gh1/sensor/2/state") == {
        "sensor_id": 2,
        "sensor_type": "ph",
        "device_id": 1,
        "device_name": "Tank A",
        "value": 6.35,
        "unit": "ph",
        "timestamp": "2025-09-11T15:30:00.000Z",
    }
    # On connecting, the hub said where each device stands; then the reading made device 1 active.
    snapshot = await observer.receive_json("smartanom/gh1/device/1/status")
    assert (snapshot["status"], snapshot["previous"], snapshot["reason"]) == ("inactive", None, "current status")
    change = await observer.receive_json("smartanom/gh1/device/1/status")
    assert (change["device_id"], change["device_name"], change["status"], change["previous"]) == (1, "Tank A", "active", "inactive")
    assert change["reason"] == "reading received"

    # A late subscriber gets the retained status and availability, not the (unretained) reading.
    late = await mqtt_observer(mosquitto.port, ["smartanom/gh1/#"])
    seen = {}
    while True:
        try:
            topic, payload, retain = await late.receive(timeout=0.5)
        except AssertionError:
            break
        assert retain, topic
        if "/alert/" not in topic:  # alert states are retained too: tests/test_mqtt_alerts.py
            seen[topic] = payload
    assert sorted(seen) == ["smartanom/gh1/availability", "smartanom/gh1/device/1/status", "smartanom/gh1/device/2/status"]
    assert seen["smartanom/gh1/availability"] == "online"
    assert json.loads(seen["smartanom/gh1/device/1/status"])["status"] == "active"
    assert json.loads(seen["smartanom/gh1/device/2/status"])["status"] == "inactive"

    current = await stats(hub)
    assert current["published"] >= 3 and current["dropped"] == 0 and current["queued"] == 0
    assert current["broker"] == f"127.0.0.1:{mosquitto.port}"


@pytest.mark.gen_test(timeout=TIMEOUT)
async def test_qos_and_retain_are_configurable(mosquitto, hub_factory, ws_client, mqtt_observer):
    live = await mqtt_observer(mosquitto.port, ["smartanom/gh1/#"])
    hub = await hub_factory(hub_yaml(mosquitto.port, "    qos: 0\n    retain: true\n    retain_status: false"))
    await wait_for_stats(hub, lambda s: s["connected"])
    client = await ws_client(hub, "/ws/sensor-data/")
    await send_reading(client, 4, 71.5)
    # QoS 0 has no acknowledgement: wait until a live subscriber saw everything went through the broker.
    assert (await live.receive_json("smartanom/gh1/sensor/4/state"))["value"] == 71.5
    for _ in range(2):
        await live.receive("smartanom/gh1/device/+/status")  # the status snapshot on connect
    assert (await live.receive_json("smartanom/gh1/device/2/status"))["status"] == "active"

    # Subscribing afterwards: only what was retained arrives.
    late = await mqtt_observer(mosquitto.port, ["smartanom/gh1/sensor/+/state", "smartanom/gh1/device/+/status"])
    topic, payload, retain = await late.receive()
    assert (topic, retain, json.loads(payload)["value"]) == ("smartanom/gh1/sensor/4/state", True, 71.5)
    with pytest.raises(AssertionError):
        await late.receive(timeout=0.5)


@pytest.mark.gen_test(timeout=TIMEOUT)
async def test_home_assistant_discovery_payloads(mosquitto, hub_factory, mqtt_observer):
    hub = await hub_factory(hub_yaml(mosquitto.port, "    homeassistant: {discovery: true}"))
    await wait_for_stats(hub, lambda s: s["published"] >= 6)
    # Subscribing afterwards, as Home Assistant starting later would: the configs are retained.
    observer = await mqtt_observer(mosquitto.port, ["homeassistant/sensor/#"])
    configs = {}
    for _ in range(6):
        topic, payload, retain = await observer.receive()
        assert retain, topic
        configs[topic] = json.loads(payload)
    assert sorted(configs) == [f"homeassistant/sensor/smartanom_gh1/sensor_{n}/config" for n in range(1, 7)]

    temperature = configs["homeassistant/sensor/smartanom_gh1/sensor_1/config"]
    assert temperature == {
        "name": "Water temperature",
        "unique_id": "smartanom_gh1_sensor_1",
        "state_topic": "smartanom/gh1/sensor/1/state",
        "value_template": "{{ value_json.value }}",
        "state_class": "measurement",
        "device_class": "temperature",
        "unit_of_measurement": "°C",
        "availability": [
            {"topic": "smartanom/gh1/availability"},
            {"topic": "smartanom/gh1/device/1/status", "value_template": "{{ 'offline' if value_json.status == 'inactive' else 'online' }}"},
        ],
        "availability_mode": "all",
        "device": {"identifiers": ["smartanom_gh1_device_1"], "name": "Tank A", "manufacturer": "SmarTanom", "model": "SmarTanom Hub device"},
        "origin": {"name": "SmarTanom Hub", "sw_version": temperature["origin"]["sw_version"]},
    }
    ph = configs["homeassistant/sensor/smartanom_gh1/sensor_2/config"]
    assert ph["device_class"] == "ph" and "unit_of_measurement" not in ph  # Home Assistant's pH class has no unit
    ec = configs["homeassistant/sensor/smartanom_gh1/sensor_3/config"]
    assert (ec["device_class"], ec["unit_of_measurement"]) == ("conductivity", "mS/cm")
    humidity = configs["homeassistant/sensor/smartanom_gh1/sensor_4/config"]
    assert (humidity["device_class"], humidity["unit_of_measurement"]) == ("humidity", "%")
    assert humidity["device"]["identifiers"] == ["smartanom_gh1_device_2"]
    tds = configs["homeassistant/sensor/smartanom_gh1/sensor_5/config"]
    assert "device_class" not in tds and tds["unit_of_measurement"] == "ppm"
    fahrenheit = configs["homeassistant/sensor/smartanom_gh1/sensor_6/config"]
    assert (fahrenheit["device_class"], fahrenheit["unit_of_measurement"]) == ("temperature", "°F")

    # Home Assistant announces its restart on <prefix>/status: the configs are sent again.
    await publish(mosquitto.port, "homeassistant/status", "online")
    again = {(await observer.receive())[0] for _ in range(6)}
    assert again == set(configs)


@pytest.mark.gen_test(timeout=TIMEOUT)
async def test_subscribed_topics_become_readings(mosquitto, hub_factory, ws_client):
    extra = """
    subscribe:
      - {topic: esphome-tank/sensor/water_temperature/state, sensor: 1}
      - {topic: tele/tasmota-climate/SENSOR, sensor: 4, json_path: AM2301.Humidity}
      - {topic: tele/tasmota-climate/SENSOR, sensor: 6, json_path: AM2301.Temperature}
      - {topic: lab/ph, sensor: 2, json_path: readings.0.value, timestamp_path: readings.0.at}
"""
    hub = await hub_factory(hub_yaml(mosquitto.port, extra))
    await wait_for_stats(hub, lambda s: s["connected"])
    client = await ws_client(hub, "/ws/sensor-data/")

    await publish(mosquitto.port, "esphome-tank/sensor/water_temperature/state", "23.4")
    update = await client.receive(type="sensor_data_update")
    assert (update["sensor_id"], update["value"], update["device_name"]) == (1, 23.4, "Tank A")

    tasmota = {"Time": "2025-09-11T15:30:00", "AM2301": {"Temperature": 75.2, "Humidity": 64.1}, "TempUnit": "F"}
    await publish(mosquitto.port, "tele/tasmota-climate/SENSOR", json.dumps(tasmota))
    got = {}
    for _ in range(2):
        update = await client.receive(type="sensor_data_update")
        got[update["sensor_id"]] = update["value"]
    assert got == {4: 64.1, 6: 75.2}

    await publish(mosquitto.port, "lab/ph", json.dumps({"readings": [{"value": "6.02", "at": "2025-09-11T15:31:00Z"}]}))
    update = await client.receive(type="sensor_data_update")
    assert (update["sensor_id"], update["value"], update["timestamp"]) == (2, 6.02, "2025-09-11T15:31:00Z")

    # Bad payloads are counted and logged; the subscription carries on.
    for bad in ("nan", "warm", b"\xff\xfe"):
        await publish(mosquitto.port, "esphome-tank/sensor/water_temperature/state", bad)
    await publish(mosquitto.port, "tele/tasmota-climate/SENSOR", json.dumps({"AM2301": {"Temperature": None}}))
    await publish(mosquitto.port, "esphome-tank/sensor/water_temperature/state", "23.5")
    update = await client.receive(type="sensor_data_update")
    assert (update["sensor_id"], update["value"]) == (1, 23.5)
    current = await stats(hub)
    assert current["rejected"] == 5  # three plain payloads + both Tasmota routes of the broken JSON
    assert current["received"] == 5


@pytest.mark.gen_test(timeout=TIMEOUT)
async def test_retained_messages_are_skipped_unless_accepted(mosquitto, hub_factory, ws_client):
    await publish(mosquitto.port, "esp/ph", "6.8", retain=True)
    await publish(mosquitto.port, "esp/ec", "1.9", retain=True)
    extra = """
    subscribe:
      - {topic: esp/ph, sensor: 2}
"""
    skipping = await hub_factory(hub_yaml(mosquitto.port, extra))
    accepting = await hub_factory(hub_yaml(mosquitto.port, extra + "    accept_retained: true", hub_id="gh2"))
    await wait_for_stats(skipping, lambda s: s["retained_skipped"] == 1)
    await wait_for_stats(accepting, lambda s: s["received"] == 1)
    assert (await stats(skipping))["received"] == 0


@pytest.mark.gen_test(timeout=60)
async def test_broker_restart_mid_stream_delivers_queued_readings(mosquitto, hub_factory, ws_client, mqtt_observer):
    observer = await mqtt_observer(mosquitto.port, ["smartanom/gh1/sensor/+/state"], persistent=True)
    hub = await hub_factory(hub_yaml(mosquitto.port))
    await wait_for_stats(hub, lambda s: s["connected"])
    client = await ws_client(hub, "/ws/sensor-data/")
    await send_reading(client, 1, 20.0)
    assert (await observer.receive_json("smartanom/gh1/sensor/1/state"))["value"] == 20.0

    observer.stay_away()
    mosquitto.stop()
    await wait_for_stats(hub, lambda s: not s["connected"])
    for value in (21.0, 22.0, 23.0):
        await send_reading(client, 1, value)  # the hub keeps accepting while the broker is away
    held = await stats(hub)
    assert held["queued"] == 3 and held["dropped"] == 0

    mosquitto.start()
    # The hub reconnects and empties its queue into the broker, which keeps the
    # messages for the observer's session until it is back.
    await wait_for_stats(hub, lambda s: s["connected"] and s["queued"] == 0, timeout=20)
    observer.come_back()
    for value in (21.0, 22.0, 23.0):
        assert (await observer.receive_json("smartanom/gh1/sensor/1/state", timeout=20))["value"] == value
    await send_reading(client, 1, 24.0)
    assert (await observer.receive_json("smartanom/gh1/sensor/1/state"))["value"] == 24.0
    after = await wait_for_stats(hub, lambda s: s["queued"] == 0)
    assert after["connected"] and after["connections"] == 2 and after["dropped"] == 0


@pytest.mark.gen_test(timeout=60)
async def test_broker_down_at_start_queue_is_bounded_and_drops_are_counted(mosquitto, hub_factory, ws_client, mqtt_observer, caplog):
    # Leave a persistent session on the broker, then take it away before the hub starts.
    observer = await mqtt_observer(mosquitto.port, ["smartanom/gh1/sensor/+/state"], persistent=True)
    observer.stay_away()
    mosquitto.stop()

    hub = await hub_factory(hub_yaml(mosquitto.port, "    queue_size: 3\n    publish_status: false"))
    first = await wait_for_stats(hub, lambda s: s["last_error"] is not None)
    assert not first["connected"] and first["connections"] == 0
    client = await ws_client(hub, "/ws/sensor-data/")
    with caplog.at_level(logging.WARNING, logger="smartanom.plugins.mqtt"):
        for value in (1.0, 2.0, 3.0, 4.0, 5.0):
            await send_reading(client, 4, value)
    held = await stats(hub)
    assert (held["queued"], held["dropped"], held["queue_size"]) == (3, 2, 3)
    assert any("oldest dropped" in r.getMessage() for r in caplog.records)

    mosquitto.start()
    await wait_for_stats(hub, lambda s: s["connected"] and s["queued"] == 0, timeout=20)
    observer.come_back()
    for value in (3.0, 4.0, 5.0):  # the newest three; 1 and 2 were dropped
        assert (await observer.receive_json("smartanom/gh1/sensor/4/state", timeout=20))["value"] == value
    with pytest.raises(AssertionError):
        await observer.receive(timeout=0.5)
    assert (await stats(hub))["dropped"] == 2


@pytest.mark.gen_test(timeout=TIMEOUT)
async def test_credentials_from_env_or_file_and_a_wrong_password_is_retried_not_fatal(tmp_path, hub_factory, monkeypatch):
    from mosquitto_broker import Mosquitto

    broker = Mosquitto(tmp_path / "secure", users={"hub": "s3cret-pw"})
    broker.start()
    try:
        monkeypatch.setenv("TEST_MQTT_PASSWORD", "s3cret-pw")
        (tmp_path / "mqtt_password").write_text("s3cret-pw\n")
        (tmp_path / "wrong_password").write_text("guess\n")
        by_env = await hub_factory(hub_yaml(broker.port, hub_id="env").replace(
            f"broker: {{host: 127.0.0.1, port: {broker.port}}}",
            f"broker: {{host: 127.0.0.1, port: {broker.port}, username: hub, password_env: TEST_MQTT_PASSWORD}}"))
        by_file = await hub_factory(hub_yaml(broker.port, hub_id="file").replace(
            f"broker: {{host: 127.0.0.1, port: {broker.port}}}",
            f"broker: {{host: 127.0.0.1, port: {broker.port}, username: hub, password_file: mqtt_password}}"))
        wrong = await hub_factory(hub_yaml(broker.port, hub_id="wrong").replace(
            f"broker: {{host: 127.0.0.1, port: {broker.port}}}",
            f"broker: {{host: 127.0.0.1, port: {broker.port}, username: hub, password_file: wrong_password}}"))
        await wait_for_stats(by_env, lambda s: s["connected"])
        await wait_for_stats(by_file, lambda s: s["connected"])
        refused = await wait_for_stats(wrong, lambda s: s["last_error"] is not None and "authori" in s["last_error"].lower())
        assert not refused["connected"]
        await asyncio.sleep(0.5)
        assert (wrong.instances["bridge"].state, wrong.instances["bridge"].restarts) == ("running", 0)  # retrying, not crashed
        assert "s3cret" not in json.dumps(await stats(by_file))
    finally:
        broker.stop()


@pytest.mark.gen_test(timeout=TIMEOUT)
async def test_tls_with_the_brokers_ca_and_refusal_without_it(tmp_path, hub_factory, ws_client):
    from mosquitto_broker import Mosquitto

    broker = Mosquitto(tmp_path / "tls", tls=True)
    broker.start()
    try:
        trusted = await hub_factory(hub_yaml(broker.port, hub_id="trusted").replace(
            f"broker: {{host: 127.0.0.1, port: {broker.port}}}",
            f"broker: {{host: 127.0.0.1, port: {broker.port}, tls: {{ca_file: {broker.ca_file}}}}}"))
        untrusted = await hub_factory(hub_yaml(broker.port, hub_id="untrusted").replace(
            f"broker: {{host: 127.0.0.1, port: {broker.port}}}",
            f"broker: {{host: 127.0.0.1, port: {broker.port}, tls: {{}}}}"))  # the system CAs never signed it
        await wait_for_stats(trusted, lambda s: s["connected"])
        refused = await wait_for_stats(untrusted, lambda s: s["last_error"] is not None)
        assert "certificate" in refused["last_error"].lower() and not refused["connected"]
        client = await ws_client(trusted, "/ws/sensor-data/")
        await send_reading(client, 3, 1.75)
        # Acknowledged (QoS 1) over TLS: the two status snapshots, the reading, the status change.
        await wait_for_stats(trusted, lambda s: s["published"] >= 4)
    finally:
        broker.stop()


@pytest.mark.gen_test(timeout=TIMEOUT)
async def test_persistent_session_gets_what_was_sent_while_the_hub_was_down(mosquitto, hub_factory, ws_client):
    yaml = hub_yaml(mosquitto.port, """
    subscribe:
      - {topic: esp/ph, sensor: 2}
""").replace("port: %d}" % mosquitto.port, "port: %d, persistent_session: true}" % mosquitto.port)
    first = await hub_factory(yaml)
    await wait_for_stats(first, lambda s: s["connected"])
    await first.stop()

    await publish(mosquitto.port, "esp/ph", "6.4")  # nobody is listening, but the broker keeps it for the hub
    second = await hub_factory(yaml)
    client = await ws_client(second, "/ws/sensor-data/")
    update = await client.receive(type="sensor_data_update", timeout=10)
    assert (update["sensor_id"], update["value"]) == (2, 6.4)
    assert (await stats(second))["received"] == 1


def test_stopping_while_the_broker_goes_away_ends_cleanly(mosquitto, tmp_path):
    """`smartanom run` gets SIGTERM and the broker dies at the same moment, so the connection
    drops while the goodbye (offline) waits for its acknowledgement. The log must end at
    "Stopped": no "Future exception was never retrieved" from aiomqtt's disconnect reason,
    which asyncio reports when the client is collected, here as the process exits."""
    config = tmp_path / "hub.yaml"
    config.write_text(f"storage: {{path: {tmp_path / 'hub.db'}}}\n" + hub_yaml(mosquitto.port))
    with HubProcess(config) as hub:
        deadline = time.monotonic() + 10
        while "connected to the broker" not in hub.output:
            assert time.monotonic() < deadline, hub.output
            time.sleep(0.05)
        mosquitto.process.send_signal(signal.SIGSTOP)  # frozen: it takes the goodbye but never acknowledges it
        try:
            hub.proc.send_signal(signal.SIGTERM)
            while "going offline" not in hub.output:
                assert hub.proc.poll() is None and time.monotonic() < deadline + 10, hub.output
                time.sleep(0.01)
        finally:
            mosquitto.process.kill()  # the connection drops while the goodbye waits for its PUBACK
            mosquitto.process.wait()
        code, output = hub.stop()
    assert code == 0, output
    assert "plugin instance bridge: platform mqtt\n" in output  # no "device None" for a platform without one
    assert output.rstrip().endswith("Stopped"), output
    assert "never retrieved" not in output and "Traceback" not in output, output
    assert "did not stop" not in output and "reconnecting" not in output, output
