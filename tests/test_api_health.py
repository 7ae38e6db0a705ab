"""core/api.py: GET /api/health, and the API's JSON errors with auth, on a real hub."""

import asyncio
import json

import pytest
import tornado.httpclient

from smartanom import Platform, hookimpl

HUB = """
devices:
  - id: 1
    name: Tank
    offline_after: 3600
    sensors:
      - {id: 1, type: ph}
      - {id: 2, type: ec}
plugins:
  - platform: simulated
    device: 1
    interval: 0.05
    seed: 1
"""


async def get(hub, path):
    response = await tornado.httpclient.AsyncHTTPClient().fetch(f"http://127.0.0.1:{hub.port}{path}", raise_error=False)
    return response.code, json.loads(response.body)


async def eventually(check, timeout=5.0):
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = await check()
        if result or loop.time() > deadline:
            return result
        await asyncio.sleep(0.1)


@pytest.mark.gen_test
async def test_health_reports_uptime_plugins_clients_and_counters(hub_factory, ws_client):
    hub = await hub_factory(HUB)
    clients = [await ws_client(hub, "/ws/sensor-data/"), await ws_client(hub, "/ws/device/1/")]
    await clients[0].request({"type": "sensor_data", "sensor_id": 2, "value": 1.5}, type="sensor_data_update")
    await clients[0].request({"type": "bogus"}, type="error")

    code, health = await get(hub, "/api/health")
    assert code == 200, health
    assert health["status"] == "ok" and health["problems"] == []
    assert 0 < health["uptime"] < 60 and health["started_at"].endswith("Z")
    (plugin,) = health["plugins"]
    assert (plugin["label"], plugin["platform"], plugin["state"], plugin["restarts"]) == ("simulated#0", "simulated", "running", 0)
    assert health["clients"] == 2
    counts = health["readings"]
    assert counts["accepted"] >= 2 and counts["dropped"] == 0
    assert counts["accepted"] == counts["stored"] + counts["pending"]
    assert health["storage"]["ok"] is True and health["storage"]["error"] is None
    assert health["storage"]["lag"] >= 0
    assert health["websocket"]["errors"] == 1

    async def stored_up():
        _, h = await get(hub, "/api/health")
        return h["readings"]["stored"] >= counts["accepted"]

    assert await eventually(stored_up)
    clients[1].close()
    assert await eventually(lambda: _clients_are(hub, 1))


async def _clients_are(hub, n):
    _, h = await get(hub, "/api/health")
    return h["clients"] == n


class Crasher:
    @hookimpl
    def register_platforms(self):
        async def run(ctx):
            raise RuntimeError("sensor bus on fire")

        return [Platform("crasher", run, needs_device=False)]


@pytest.mark.gen_test
async def test_health_is_503_while_a_plugin_crash_loops(hub_factory):
    hub = await hub_factory("plugins:\n  - platform: crasher\n", plugins=[("crasher", Crasher())])

    async def degraded():
        code, h = await get(hub, "/api/health")
        return (code, h) if code == 503 else None

    code, health = await eventually(degraded)
    assert health["status"] == "degraded"
    assert health["plugins"][0]["state"] == "restarting"
    assert "sensor bus on fire" in health["plugins"][0]["last_error"]
    assert "crasher#0" in health["problems"][0]
