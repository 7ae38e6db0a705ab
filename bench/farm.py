"""Farm scale: a central hub fed over MQTT by many edge hubs (bench/rollups.py --only farm).

A real Mosquitto broker on loopback and a central hub (`smartanom run`, a
subprocess) whose `mqtt` platform takes in EDGES edge hubs x SENSORS sensors
(`edge_hubs`, docs/mqtt.md). The edges are simulated by one publisher in this
process that sends exactly what an edge hub sends (its state topic and JSON, QoS
1), one reading per sensor per simulated second, with simulated timestamps: the
simulated span ends now, so the dashboard's windows show it. Time runs
`speed` times faster than real, so an hour takes 60 / speed minutes.

Sampled every second from the central hub's /api/health and /api/plugins: the
writer's lag and pending readings, MQTT messages received. Afterwards: readings
stored against sent, bytes per reading (raw, index and rollups) and so the
database's growth per day at 1 Hz, and the dashboard's queries for one
greenhouse's 20 sensors.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sqlite3
import sys
import time
from pathlib import Path

import aiomqtt

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent / "tests"))

from mosquitto_broker import Mosquitto  # noqa: E402

EDGES = 20
SENSORS = 20


def central_config(directory: Path, port: int) -> Path:
    lines = [
        "server:", "  host: 127.0.0.1",
        "storage:", f"  path: {directory / 'central.db'}",
        "devices:",
    ]
    for edge in range(1, EDGES + 1):
        lines += [f"  - id: {edge}", f"    name: Greenhouse {edge}", "    offline_after: 3600", "    sensors:"]
        lines += [f"      - {{id: {(edge - 1) * SENSORS + s}, type: ph}}" for s in range(1, SENSORS + 1)]
    lines += [
        "plugins:", "  - platform: mqtt", "    hub_id: central",
        f"    broker: {{host: 127.0.0.1, port: {port}, persistent_session: true}}",
        "    edge_hubs:",
    ]
    for edge in range(1, EDGES + 1):
        mapping = ", ".join(f"{s}: {(edge - 1) * SENSORS + s}" for s in range(1, SENSORS + 1))
        lines += [f"      - hub_id: edge-{edge:02d}", f"        sensors: {{{mapping}}}"]
    path = directory / "central.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def _stamp(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int(ts % 1 * 1000):03d}Z"


async def _json(url: str) -> dict:
    from tornado.httpclient import AsyncHTTPClient

    return json.loads((await AsyncHTTPClient().fetch(url)).body)


async def _publish(port: int, start: float, seconds: int, speed: float, progress: dict) -> None:
    """Every simulated second, one reading from each sensor of each edge, paced to `speed`."""
    quiet = logging.getLogger("bench.edges")
    quiet.setLevel(logging.ERROR)  # not a warning per second about the messages in flight
    async with aiomqtt.Client("127.0.0.1", port, identifier="bench-edges", logger=quiet) as client:
        began = time.perf_counter()
        for second in range(seconds):
            ts = start + second
            batch = []
            for edge in range(1, EDGES + 1):
                for sensor in range(1, SENSORS + 1):
                    payload = json.dumps({"sensor_id": sensor, "sensor_type": "ph", "device_id": 1, "device_name": f"Greenhouse {edge}",
                                          "value": 6.0 + ((second + sensor) % 50) / 100, "unit": "ph", "timestamp": _stamp(ts + sensor * 0.01)})
                    batch.append(client.publish(f"smartanom/edge-{edge:02d}/sensor/{sensor}/state", payload, qos=1))
            # The edges publish side by side: one simulated second's messages in flight together.
            await asyncio.gather(*batch)
            progress["sent"] += len(batch)
            delay = began + (second + 1) / speed - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
        progress["publish_s"] = time.perf_counter() - began


async def _measure(url: str, broker_port: int, minutes: float, speed: float) -> dict:
    seconds = int(minutes * 60)
    start = time.time() - seconds
    progress = {"sent": 0}
    samples = []
    publisher = asyncio.ensure_future(_publish(broker_port, start, seconds, speed, progress))
    while not publisher.done():
        health = await _json(f"{url}/api/health")
        samples.append((health["storage"]["lag"], health["readings"]["pending"], health["readings"]["stored"]))
        await asyncio.sleep(1)
    await publisher
    deadline = time.perf_counter() + 120
    while time.perf_counter() < deadline:
        health = await _json(f"{url}/api/health")
        if health["readings"]["stored"] >= progress["sent"]:
            break
        await asyncio.sleep(0.5)
    caught_up = time.perf_counter() - (deadline - 120)
    mqtt = [i for i in (await _json(f"{url}/api/plugins"))["instances"] if i["platform"] == "mqtt"][0]["stats"]
    from keepalive import Pool

    pool = Pool(url)
    ids = ",".join(str(s) for s in range(1, SENSORS + 1))
    queries = {}
    for name, since, bucket in (("1h raw", seconds - 20 if seconds > 3600 else seconds, None), ("24h 5m", 86400, "5m"), ("7d 1h", 7 * 86400, "1h")):
        path = f"/api/readings?sensors={ids}&since={_stamp(time.time() - since)}&order=asc&limit=10000" + (f"&bucket={bucket}" if bucket else "")
        times = []
        for _ in range(10):
            began = time.perf_counter()
            status, _ = await pool.get(path)
            assert status == 200
            times.append(time.perf_counter() - began)
        queries[name] = round(sorted(times)[5] * 1000, 1)
    pool.close()
    return {
        "simulated_minutes": minutes,
        "speed": speed,
        "offered_per_s": round(progress["sent"] / progress["publish_s"]),
        "sent": progress["sent"],
        "received_mqtt": mqtt["received"],
        "stored": health["readings"]["stored"],
        "stored_within_s_after_publishing": round(caught_up, 1),
        "writer_lag_max_s": max(s[0] for s in samples),
        "pending_max": max(s[1] for s in samples),
        "dashboard_one_greenhouse_p50_ms": queries,
    }


def run(workdir: Path, minutes: float, speed: float = 20.0) -> dict:
    from rollups import HubProcess

    directory = workdir / "farm"
    directory.mkdir(exist_ok=True)
    broker = Mosquitto(directory / "broker")
    # Mosquitto queues at most 1000 QoS 1 messages for a subscriber that is
    # behind and then drops them: a central hub pausing a few seconds (a long
    # query, a busy machine) would lose readings. docs/mqtt.md recommends this.
    with open(broker.conf, "a") as conf:
        conf.write("max_queued_messages 1000000\n")
    broker.start()
    try:
        hub = HubProcess(central_config(directory, broker.port), directory)
        try:
            asyncio.run(_wait_connected(hub.url))
            result = asyncio.run(_measure(hub.url, broker.port, minutes, speed))
        finally:
            hub.stop()
    finally:
        broker.stop()
    db = directory / "central.db"
    conn = sqlite3.connect(db)
    sizes = dict(conn.execute("SELECT name, sum(pgsize) FROM dbstat GROUP BY name"))
    rows = conn.execute("SELECT count(*) FROM readings").fetchone()[0]
    conn.close()
    data = sum(v for k, v in sizes.items() if k.startswith(("readings", "rollup_")))
    per_reading = data / rows
    result.update(
        rows=rows,
        bytes_per_reading=round(per_reading, 1),
        growth_per_day_mb=round(per_reading * EDGES * SENSORS * 86400 / 1e6),
        file_mb=round(os.path.getsize(db) / 1e6, 1),
    )
    return result


async def _wait_connected(url: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        instances = (await _json(f"{url}/api/plugins"))["instances"]
        if any(i["platform"] == "mqtt" and i["stats"].get("connected") for i in instances):
            return
        await asyncio.sleep(0.1)
    raise RuntimeError("the central hub did not connect to the broker")
