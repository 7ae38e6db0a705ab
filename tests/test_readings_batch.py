"""GET /api/readings (core/readings_batch.py): several sensors' history in one answer, against a real hub."""

import asyncio
import json

import pytest
from tornado.httpclient import AsyncHTTPClient

from smartanom.protocol import format_timestamp

HUB = """
storage:
  flush_interval: 0.05
devices:
  - id: 1
    name: Tank
    sensors: [{id: 1, type: temperature}, {id: 2, type: ph}, {id: 3, type: ec}]
"""
T0 = 1_699_920_000.0  # a whole day, UTC


@pytest.fixture
def hub(io_loop, hub_factory):
    return io_loop.run_sync(lambda: hub_factory(HUB))


async def get(hub, path, status=200):
    response = await AsyncHTTPClient().fetch(hub.url + path, raise_error=False)
    assert response.code == status, response.body
    return json.loads(response.body)


async def store(hub, readings):
    target = hub.storage.stored + len(readings)
    for sensor_id, ts, value in readings:
        hub.accept_reading(hub.registry.sensor(sensor_id), value, ts)
    while hub.storage.stored < target:
        await asyncio.sleep(0.02)


@pytest.mark.gen_test(timeout=20)
async def test_each_sensor_gets_the_page_its_own_endpoint_gives(hub):
    await store(hub, [(s, T0 + 97 * i, float(i % 17) + s) for i in range(400) for s in (1, 2, 3)])
    query = f"since={format_timestamp(T0 + 1000)}&bucket=1h&order=asc&limit=5"
    many = await get(hub, f"/api/readings?sensors=3,1&{query}")
    assert many["order"] == "asc" and many["bucket"] == "1h"
    assert [s["sensor_id"] for s in many["sensors"]] == [3, 1]
    for entry in many["sensors"]:
        one = await get(hub, f"/api/sensors/{entry['sensor_id']}/readings?{query}")
        assert entry["buckets"] == one["buckets"] and len(entry["buckets"]) == 5
        # `next` continues on the one-sensor endpoint, where that one's own `next` goes.
        assert (await get(hub, entry["next"]))["buckets"] == (await get(hub, one["next"]))["buckets"]
    raw = await get(hub, "/api/readings?limit=2")
    assert [s["sensor_id"] for s in raw["sensors"]] == [1, 2, 3]  # every sensor by default
    assert raw["sensors"][1]["readings"] == [{"timestamp": format_timestamp(T0 + 97 * 399), "value": float(399 % 17) + 2}, {"timestamp": format_timestamp(T0 + 97 * 398), "value": float(398 % 17) + 2}]


@pytest.mark.gen_test(timeout=20)
async def test_bad_sensors_and_parameters_are_named(hub):
    for query, parameter in [("sensors=1,99", "sensors"), ("sensors=1,x", "sensors"), ("sensors=", "sensors"), ("sensors=1,%C2%B2", "sensors"), ("sensors=%D9%A1", "sensors"), ("cursor=1", "cursor"), ("bucket=2h", "bucket")]:
        body = await get(hub, f"/api/readings?{query}", status=400)
        assert body["error"]["parameter"] == parameter, body
