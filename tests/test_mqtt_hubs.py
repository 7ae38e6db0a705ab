"""Many hubs on one broker: edge hub -> Mosquitto -> central hub, as docs/mqtt.md walks through.

Two real `smartanom run` processes on free ports and one real broker; the
edge is fed by its simulator and by a WebSocket client, and a WebSocket
client of the central hub sees the edge's readings under the central's ids.
"""

import asyncio
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from calendar import timegm
from pathlib import Path
from types import SimpleNamespace

import pytest
import tornado.httpclient

from mosquitto_broker import mosquitto, mqtt_observer  # noqa: F401

SMARTANOM = str(Path(sys.executable).parent / "smartanom")

EDGE = """
storage: {{path: {dir}/edge.db}}
devices:
  - id: 1
    name: Tank
    sensors:
      - {{id: 1, type: ph}}
      - {{id: 2, type: water_temperature}}
  - id: 2
    name: Climate
    sensors:
      - {{id: 3, type: humidity}}
plugins:
  - platform: mqtt
    hub_id: greenhouse-1
    broker: {{host: 127.0.0.1, port: {port}}}
    reconnect_min_delay: 0.2
  - platform: simulated
    device: 2
    interval: 0.5
"""

CENTRAL = """
storage: {{path: {dir}/central.db}}
devices:
  - id: 10
    name: Greenhouse 1 tank
    sensors:
      - {{id: 101, type: ph}}
      - {{id: 102, type: water_temperature}}
  - id: 11
    name: Greenhouse 1 climate
    sensors:
      - {{id: 103, type: humidity}}
plugins:
  - platform: mqtt
    hub_id: central
    broker: {{host: 127.0.0.1, port: {port}, persistent_session: true}}
    reconnect_min_delay: 0.2
    edge_hubs:
      - hub_id: greenhouse-1
        sensors: {{1: 101, 2: 102, 3: 103}}
"""


class HubProcess:
    def __init__(self, name: str, config: Path, directory: Path):
        self.log = directory / f"{name}.log"
        self.process = subprocess.Popen(
            [SMARTANOM, "run", "--config", str(config), "--port", "0"],
            cwd=directory, stdout=subprocess.DEVNULL, stderr=self.log.open("w"),
        )
        self.port: int | None = None

    async def serving(self, timeout: float = 20.0) -> "HubProcess":
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = re.search(r"Serving on http://127\.0\.0\.1:(\d+)", self.log.read_text())
            if found:
                self.port = int(found.group(1))
                return self
            if self.process.poll() is not None:
                raise AssertionError(f"hub exited ({self.process.returncode}):\n{self.log.read_text()}")
            await asyncio.sleep(0.05)
        raise AssertionError(f"hub not serving within {timeout} s:\n{self.log.read_text()}")

    async def mqtt_stats(self) -> dict:
        response = await tornado.httpclient.AsyncHTTPClient().fetch(f"http://127.0.0.1:{self.port}/api/plugins")
        (instance,) = [i for i in json.loads(response.body)["instances"] if i["platform"] == "mqtt"]
        return instance["stats"]

    async def connected(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while not (await self.mqtt_stats())["connected"]:
            if time.monotonic() > deadline:
                raise AssertionError(f"not connected to the broker within {timeout} s:\n{self.log.read_text()}")
            await asyncio.sleep(0.05)

    def stop(self, sig=signal.SIGTERM) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        return self.process.wait(20)


def db_values(path, sensor_id: int) -> list[float]:
    with sqlite3.connect(path) as db:
        return [v for (v,) in db.execute("SELECT value FROM readings WHERE sensor_id = ? ORDER BY ts", (sensor_id,))]


@pytest.fixture
def hub_processes(tmp_path):
    started: list[HubProcess] = []

    def start(name: str, yaml_text: str) -> HubProcess:
        config = tmp_path / f"{name}.yaml"
        config.write_text(textwrap.dedent(yaml_text))
        started.append(HubProcess(name, config, tmp_path))
        return started[-1]

    yield start
    for hub in started:
        if hub.process.poll() is None:
            hub.process.kill()
            hub.process.wait(10)


@pytest.mark.gen_test(timeout=90)
async def test_edge_readings_reach_the_central_hubs_websocket_clients(mosquitto, hub_processes, ws_client, mqtt_observer, tmp_path):
    central = await hub_processes("central", CENTRAL.format(dir=tmp_path, port=mosquitto.port)).serving()
    edge = await hub_processes("edge", EDGE.format(dir=tmp_path, port=mosquitto.port)).serving()
    await central.connected()
    await edge.connected()
    observer = await mqtt_observer(mosquitto.port, ["smartanom/greenhouse-1/availability", "smartanom/central/sensor/+/state"])
    assert (await observer.receive("smartanom/greenhouse-1/availability"))[1] == "online"

    dashboard = await ws_client(SimpleNamespace(port=central.port), "/ws/sensor-data/")
    tablet = await ws_client(SimpleNamespace(port=edge.port), "/ws/sensor-data/")

    # The edge's simulator feeds its humidity sensor 3: the central serves it as its sensor 103.
    update = await dashboard.receive(type="sensor_data_update", timeout=20)
    assert update["sensor_id"] == 103 and update["device_id"] == 11 and update["unit"] == "percent"
    assert 60 <= update["value"] <= 80

    # A reading sent to the edge by WebSocket arrives at the central's clients, with its own timestamp.
    await tablet.request({"type": "sensor_data", "sensor_id": 1, "value": 6.25, "timestamp": "2025-09-11T15:30:00Z"}, type="sensor_data_update")
    while (update := await dashboard.receive(type="sensor_data_update", timeout=20))["sensor_id"] == 103:
        pass
    assert update == {
        "type": "sensor_data_update",
        "sensor_id": 101,
        "sensor_type": "ph",
        "device_id": 10,
        "device_name": "Greenhouse 1 tank",
        "value": 6.25,
        "unit": "ph",
        "timestamp": "2025-09-11T15:30:00Z",
    }
    # ...and the central hub publishes it again under its own name (for its Home Assistant, say).
    republished = json.loads((await observer.receive("smartanom/central/sensor/101/state"))[1])
    assert (republished["value"], republished["timestamp"]) == (6.25, "2025-09-11T15:30:00.000Z")

    # The broker restarts (keeping sessions, as Debian's mosquitto.conf does): what the edge
    # accepted meanwhile reaches the central, in order, whichever hub reconnects first.
    mosquitto.stop()
    while (await edge.mqtt_stats())["connected"]:
        await asyncio.sleep(0.05)
    for value in (20.1, 20.2, 20.3):
        await tablet.request({"type": "sensor_data", "sensor_id": 2, "value": value}, type="sensor_data_update")
    assert (await edge.mqtt_stats())["queued"] >= 3
    mosquitto.start()
    got = []
    while len(got) < 3:
        update = await dashboard.receive(type="sensor_data_update", timeout=30)
        if update["sensor_id"] == 102:
            got.append(update["value"])
    assert got == [20.1, 20.2, 20.3]
    while (await observer.receive("smartanom/greenhouse-1/availability"))[1] != "online":
        pass  # a retained 'offline' from the broker's shutdown, replayed to the reconnecting observer

    # The edge dies without a goodbye: the broker announces it with the edge's last will.
    edge.stop(signal.SIGKILL)
    while (message := await observer.receive("smartanom/greenhouse-1/availability"))[2]:
        pass  # retained replays; the will itself arrives live
    assert message == ("smartanom/greenhouse-1/availability", "offline", False)

    # The central hub stored what it received in its own database.
    assert central.stop() == 0
    with sqlite3.connect(tmp_path / "central.db") as db:
        rows = db.execute("SELECT value, ts FROM readings WHERE sensor_id = 101").fetchall()
        humidity = db.execute("SELECT COUNT(*) FROM readings WHERE sensor_id = 103").fetchone()[0]
    assert rows == [(6.25, timegm((2025, 9, 11, 15, 30, 0)))]
    assert db_values(tmp_path / "central.db", 102) == [20.1, 20.2, 20.3]
    assert humidity >= 1
    assert "Traceback" not in central.log.read_text()
