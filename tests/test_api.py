"""The HTTP API of docs/api.md against a real hub on a free port."""

import asyncio
import csv
import io
import json
from urllib.parse import quote

import pytest
from tornado.httpclient import AsyncHTTPClient

from smartanom.protocol import format_timestamp

HUB = """
storage:
  flush_interval: 0.05
devices:
  - id: 1
    name: Hydroponic System 1
    sensors:
      - {id: 1, type: temperature}
      - {id: 2, type: ph}
  - id: 2
    name: Nursery
    sensors:
      - {id: 3, type: ec}
"""

T0 = 1_699_999_200.0  # a whole hour, UTC


@pytest.fixture
def hub(io_loop, hub_factory):
    return io_loop.run_sync(lambda: hub_factory(HUB))


async def get(hub, path, headers=None):
    response = await AsyncHTTPClient().fetch(hub.url + path, headers=headers, raise_error=False)
    return response


async def get_json(hub, path, status=200):
    response = await get(hub, path)
    assert response.code == status, response.body
    assert response.headers["Content-Type"].startswith("application/json")
    return json.loads(response.body)


async def store(hub, readings):
    """Publish (sensor_id, ts, value) readings as a plugin would and wait until they are on disk."""
    target = hub.storage.stored + len(readings)
    for sensor_id, ts, value in readings:
        hub.accept_reading(hub.registry.sensor(sensor_id), value, ts)
    for _ in range(200):
        if hub.storage.stored >= target:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("readings were not stored")


@pytest.mark.gen_test
async def test_devices_with_status_and_sensors(hub):
    body = await get_json(hub, "/api/devices")
    assert [d["id"] for d in body["devices"]] == [1, 2]
    first = body["devices"][0]
    assert first["status"] == "inactive" and first["last_reading"] is None
    assert first["sensors"][1] == {"id": 2, "type": "ph", "unit": "ph", "name": "pH", "device_id": 1}
    await store(hub, [(3, None, 1.2)])
    nursery = await get_json(hub, "/api/devices/2")
    assert nursery["status"] == "active" and nursery["last_reading"].endswith("Z")


@pytest.mark.gen_test
async def test_sensor_with_its_latest_stored_reading(hub):
    assert (await get_json(hub, "/api/sensors/2"))["latest"] is None
    await store(hub, [(2, T0 + 5, 6.5), (2, T0 + 1, 5.0), (1, T0 + 9, 20.0)])
    sensor = await get_json(hub, "/api/sensors/2")
    assert sensor == {
        "id": 2, "type": "ph", "unit": "ph", "name": "pH", "device_id": 1,
        "latest": {"timestamp": format_timestamp(T0 + 5), "value": 6.5},
    }
    every = await get_json(hub, "/api/sensors")
    assert [(s["id"], s["latest"] and s["latest"]["value"]) for s in every["sensors"]] == [(1, 20.0), (2, 6.5), (3, None)]


@pytest.mark.gen_test
async def test_unknown_ids_are_json_404s(hub):
    for path, code in [
        ("/api/devices/9", "UNKNOWN_DEVICE"),
        ("/api/devices/abc", "UNKNOWN_DEVICE"),
        ("/api/sensors/9", "UNKNOWN_SENSOR"),
        ("/api/sensors/9/readings", "UNKNOWN_SENSOR"),
        ("/api/nothing-here", "NOT_FOUND"),
    ]:
        body = await get_json(hub, path, status=404)
        assert body["error"]["code"] == code, path
        assert body["error"]["message"]


@pytest.mark.gen_test
async def test_readings_newest_first_within_bounds(hub):
    await store(hub, [(1, T0 + i, float(i)) for i in range(10)] + [(2, T0 + 3, 99.0)])
    since, until = quote(format_timestamp(T0 + 2)), quote(format_timestamp(T0 + 6))
    body = await get_json(hub, f"/api/sensors/1/readings?since={since}&until={until}")
    assert body["order"] == "desc" and body["next"] is None and body["unit"] == "celsius"
    assert body["readings"] == [{"timestamp": format_timestamp(T0 + i), "value": float(i)} for i in (5, 4, 3, 2)]
    # An offset, and a '+' left unencoded by hand (it arrives as a space), mean the same moment.
    local = "2023-11-14T23:00:02+01:00"  # = T0 + 2 in UTC
    for text in (quote(local), local):
        body = await get_json(hub, f"/api/sensors/1/readings?order=asc&limit=1&since={text}")
        assert body["readings"] == [{"timestamp": format_timestamp(T0 + 2), "value": 2.0}]


@pytest.mark.gen_test
async def test_following_next_links_returns_every_reading_once(hub):
    await store(hub, [(1, T0 + i // 2, float(i)) for i in range(25)])
    values, path, pages = [], "/api/sensors/1/readings?limit=7&order=asc", 0
    while path:
        body = await get_json(hub, path)
        values += [r["value"] for r in body["readings"]]
        path, pages = body["next"], pages + 1
    assert pages == 4
    assert sorted(values) == [float(i) for i in range(25)] and len(values) == 25


@pytest.mark.gen_test
async def test_buckets_are_min_mean_max_per_minute(hub):
    await store(hub, [(1, T0 + s, float(s)) for s in (0, 10, 50)] + [(1, T0 + 61, 7.0)])
    body = await get_json(hub, "/api/sensors/1/readings?bucket=1m&order=asc")
    assert body["bucket"] == "1m"
    assert body["buckets"] == [
        {"timestamp": format_timestamp(T0), "min": 0.0, "mean": 20.0, "max": 50.0, "count": 3},
        {"timestamp": format_timestamp(T0 + 60), "min": 7.0, "mean": 7.0, "max": 7.0, "count": 1},
    ]


@pytest.mark.gen_test
async def test_csv_by_accept_header_or_format_parameter(hub):
    await store(hub, [(2, T0, 6.0), (2, T0 + 1, 6.25), (2, T0 + 2, 6.5)])
    by_header = await get(hub, "/api/sensors/2/readings?limit=2", headers={"Accept": "text/csv"})
    by_param = await get(hub, "/api/sensors/2/readings?limit=2&format=csv")
    for response in (by_header, by_param):
        assert response.code == 200
        assert response.headers["Content-Type"].startswith("text/csv")
        rows = list(csv.reader(io.StringIO(response.body.decode())))
        assert rows == [["timestamp", "value"], [format_timestamp(T0 + 2), "6.5"], [format_timestamp(T0 + 1), "6.25"]]
        # The next page is in the Link header, since CSV has no room for it.
        link = response.headers["Link"]
        assert link.startswith("</api/sensors/2/readings?") and link.endswith('>; rel="next"')
    rest = await get(hub, by_param.headers["Link"][1:].split(">")[0])
    assert rest.body.decode().splitlines()[1:] == [f"{format_timestamp(T0)},6.0"]
    buckets = await get(hub, "/api/sensors/2/readings?bucket=1h&format=csv")
    assert buckets.body.decode().splitlines() == ["timestamp,min,mean,max,count", f"{format_timestamp(T0)},6.0,6.25,6.5,3"]


@pytest.mark.gen_test
async def test_bad_parameters_are_400s_that_name_the_parameter(hub):
    cases = {
        "since=yesterday": "since",
        "until=2025-13-01T00:00:00Z": "until",
        "since=2025-01-02T00:00:00Z&until=2025-01-01T00:00:00Z": "until",
        "limit=0": "limit",
        "limit=10001": "limit",
        "limit=ten": "limit",
        "order=up": "order",
        "bucket=2m": "bucket",
        "format=xml": "format",
        "cursor=garbage": "cursor",
        "sinse=2025-01-01T00:00:00Z": "sinse",
        "limit=5&limit=6": "limit",
    }
    for query, parameter in cases.items():
        body = await get_json(hub, f"/api/sensors/1/readings?{query}", status=400)
        assert body["error"]["code"] == "INVALID_PARAMETER", query
        assert body["error"]["parameter"] == parameter, query
        assert f"'{parameter}'" in body["error"]["message"], query
    # A bad request breaks nothing: the next one is answered.
    assert (await get_json(hub, "/api/sensors/1/readings"))["readings"] == []


@pytest.mark.gen_test
async def test_cursors_are_opaque_and_checked_for_kind_sensor_and_range(hub):
    await store(hub, [(1, T0 + i, float(i)) for i in range(5)] + [(2, T0, 1.0), (2, T0 + 1, 2.0)])
    raw = await get_json(hub, "/api/sensors/1/readings?limit=2")
    cursor = raw["next"].split("cursor=")[1]
    bucketed = await get_json(hub, "/api/sensors/1/readings?limit=1&bucket=1m&order=asc&since=" + quote(format_timestamp(T0 - 3600)))
    # The cases: overflowing numbers were a 500, nan and negative ids a 200,
    # a raw cursor was taken by a bucket query and one sensor's by another.
    for query in (
        "cursor=1.0_99999999999999999999999999",
        "cursor=1_9223372036854775808",
        "cursor=nan_1",
        "cursor=1_-1",
        f"bucket=1m&cursor={cursor}",
        f"limit=2&cursor={bucketed['next'].split('cursor=')[1]}" if bucketed["next"] else "cursor=%00",
    ):
        body = await get_json(hub, f"/api/sensors/1/readings?{query}", status=400)
        assert body["error"]["parameter"] == "cursor", query
    other = await get_json(hub, f"/api/sensors/2/readings?limit=2&cursor={cursor}", status=400)
    assert "another sensor" in other["error"]["message"]
    # The real one still works.
    assert [r["value"] for r in (await get_json(hub, raw["next"]))["readings"]] == [2.0, 1.0]


@pytest.mark.gen_test
async def test_a_csv_without_limit_is_the_whole_range_with_one_header(hub):
    await store(hub, [(1, T0 + i, float(i)) for i in range(12_345)])
    response = await get(hub, "/api/sensors/1/readings?format=csv&order=asc")
    assert response.code == 200 and "Link" not in response.headers
    rows = list(csv.reader(io.StringIO(response.body.decode())))
    assert rows[0] == ["timestamp", "value"] and len(rows) == 12_346
    assert [float(r[1]) for r in rows[1:]] == [float(i) for i in range(12_345)]
