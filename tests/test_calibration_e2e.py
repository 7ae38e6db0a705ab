"""End to end: a simulated pH probe whose raw signal is offset and scaled (the
simulator's raw mode) is calibrated through the HTTP API and through
`smartanom calibrate`, and a WebSocket client then receives true values;
derived sensors are streamed, stored, and stop when an input goes stale."""

import asyncio
import json
import logging
import os
import sys

import pytest
from tornado.httpclient import AsyncHTTPClient

from smartanom.builtin.mqtt.discovery import discovery_messages
from smartanom.builtin.mqtt.messages import Topics

SCALE, OFFSET = 1.02, 0.8  # the probe reads 1.02 x true pH + 0.8: 102 % slope, -56 mV offset

HUB = f"""
storage:
  flush_interval: 0.05
devices:
  - id: 1
    name: Tank
    sensors:
      - {{id: 1, type: ph, min: 0, max: 14}}
      - {{id: 3, type: water_temperature}}
calibration:
  stability: {{seconds: 0.4, timeout: 20}}
  sensors:
    - sensor: 1
plugins:
  - platform: simulated
    device: 1
    interval: 0.05
    seed: 7
    raw:
      - {{sensor: 1, scale: {SCALE}, offset: {OFFSET}}}
"""


async def call(hub, method, path, body=None, status=200):
    response = await AsyncHTTPClient().fetch(
        hub.url + path, method=method, body=None if method in ("GET", "DELETE") and body is None else json.dumps(body or {}),
        headers={"Content-Type": "application/json"}, raise_error=False, allow_nonstandard_methods=True,
    )
    assert response.code == status, response.body
    return json.loads(response.body)


async def until(predicate, timeout=20.0):
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = await predicate()
        if result:
            return result
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


async def check_true_values_reach_clients(hub, client, calibration_id):
    """WebSocket readings after calibrating are the true pH, and history keeps the raw value."""
    updates = [await client.receive("sensor_data_update") for _ in range(10)]
    assert all(u["sensor_id"] == 1 and 5.5 <= u["value"] <= 7.5 for u in updates), updates  # the model's true range

    async def stored():
        page = await call(hub, "GET", "/api/sensors/1/readings?calibration=true&limit=200")
        # After a busy moment two readings can share a millisecond, and one of them may
        # be stored before the other: wait for each update's own row, by time and value.
        rows = {(r["timestamp"], r["value"]): r for r in page["readings"]}
        return rows if all((u["timestamp"], u["value"]) in rows for u in updates) else None

    rows = await until(stored)
    for update in updates:
        row = rows[update["timestamp"], update["value"]]
        assert row["calibration_id"] == calibration_id
        assert row["value"] == pytest.approx((row["raw"] - OFFSET) / SCALE, abs=1e-9)


@pytest.mark.gen_test(timeout=60)
async def test_calibrate_through_the_api_and_receive_true_values(hub_factory, ws_client):
    hub = await hub_factory(HUB)
    client = await ws_client(hub, "/ws/sensor/1/")
    before = await client.receive("sensor_data_update")
    assert before["value"] > 0
    session = await call(hub, "POST", "/api/calibration/1", {"standards": [7, 4, 10], "temperature": 25}, status=201)
    assert session["state"] == "waiting" and "pH 7.00 buffer" in session["message"]
    await client.nothing_within(0.2)  # readings in flight when the session began
    assert await client.nothing_within(0.5) == []  # the probe is in a buffer: nothing reaches clients
    await call(hub, "POST", "/api/calibration/1", status=409)  # one session at a time
    for standard in (7.0, 4.0, 10.0):
        measuring = await call(hub, "POST", "/api/calibration/1/measure")
        assert measuring["state"] == "measuring"

        async def next_step():
            state = (await call(hub, "GET", "/api/calibration/1"))["session"]
            return state if state["state"] not in ("measuring", "saving") else None

        session = await until(next_step)
    assert session["state"] == "done", session
    report = session["report"]
    assert report["slope_percent"] == [102.0, 102.0] and report["offset_mv"] == pytest.approx(-55.6, abs=0.1)
    assert report["verdict"] == "clean" and "needs cleaning soon" in session["message"]
    assert [p["raw"] for p in session["points"]] == pytest.approx([SCALE * 7 + OFFSET, SCALE * 4 + OFFSET, SCALE * 10 + OFFSET])
    status = await call(hub, "GET", "/api/calibration/1")
    assert status["calibration"]["id"] == session["calibration_id"] and status["due"]["due"] is False
    assert [c["id"] for c in status["history"]] == [session["calibration_id"]]
    await check_true_values_reach_clients(hub, client, session["calibration_id"])


@pytest.mark.gen_test(timeout=60)
async def test_calibrate_through_the_cli(hub_factory, ws_client):
    hub = await hub_factory(HUB)
    client = await ws_client(hub, "/ws/sensor/1/")
    await client.receive("sensor_data_update")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "smartanom.cli", "calibrate", "1", "--standards", "7,4", "--url", hub.url,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "SMARTANOM_TOKEN": ""},
    )
    out, _ = await asyncio.wait_for(proc.communicate(b"\n\n"), 40)
    text = out.decode()
    assert proc.returncode == 0, text
    assert "point 1 of 2: rinse the probe, put it in the pH 7.00 buffer" in text
    assert "point 2 of 2" in text and "waiting for a stable reading" in text
    assert "Slope: 102 % of Nernst; offset -55.6 mV at pH 7; verdict: clean" in text
    assert "Calibration applied: value = 0.98039 x raw -0.78431" in text
    status = await call(hub, "GET", "/api/calibration/1")
    await client.nothing_within(0.1)
    await check_true_values_reach_clients(hub, client, status["calibration"]["id"])


@pytest.mark.gen_test(timeout=60)
async def test_cli_cancel_applies_nothing(hub_factory):
    hub = await hub_factory(HUB)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "smartanom.cli", "calibrate", "1", "--url", hub.url,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(b"q\n"), 30)
    assert proc.returncode == 1 and "cancelled: cancelled; nothing was applied" in out.decode()
    status = await call(hub, "GET", "/api/calibration/1")
    assert status["calibration"] is None and status["session"]["state"] == "cancelled"
    assert not hub.calibration.is_calibrating(1)
    await call(hub, "DELETE", "/api/calibration/1")  # dismissed
    await call(hub, "DELETE", "/api/calibration/1", status=404)


@pytest.mark.gen_test(timeout=30)
async def test_api_refuses_bad_requests(hub_factory):
    hub = await hub_factory(HUB)
    await call(hub, "POST", "/api/calibration/1", {"standards": [7, 7]}, status=400)
    await call(hub, "POST", "/api/calibration/1", {"standards": "7,4"}, status=400)
    await call(hub, "POST", "/api/calibration/1", {"standards": [15]}, status=400)
    await call(hub, "POST", "/api/calibration/1", {"colour": 1}, status=400)
    await call(hub, "POST", "/api/calibration/3", {}, status=400)  # a thermometer has no default standards
    await call(hub, "POST", "/api/calibration/99", {}, status=404)
    await call(hub, "POST", "/api/calibration/1/measure", status=409)  # no session
    # Not JSON: refused, so a form on another site cannot start one.
    response = await AsyncHTTPClient().fetch(hub.url + "/api/calibration/1", method="POST", body="", headers={"Content-Type": "application/x-www-form-urlencoded"}, raise_error=False)
    assert response.code == 415


AUTH_HUB = HUB + """
auth:
  enabled: true
  tokens_env: CAL_TOKENS
"""


@pytest.mark.gen_test(timeout=30)
async def test_calibrating_needs_the_write_role(hub_factory, monkeypatch):
    monkeypatch.setenv("CAL_TOKENS", "read:" + "r" * 32 + ",write:" + "w" * 32)
    hub = await hub_factory(AUTH_HUB)

    async def post(token):
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
        return await AsyncHTTPClient().fetch(hub.url + "/api/calibration/1", method="POST", body="{}", headers=headers, raise_error=False)

    assert (await post("r" * 32)).code == 403
    assert (await post("x" * 32)).code == 401
    assert (await post("w" * 32)).code == 201


@pytest.mark.gen_test(timeout=60)
async def test_cli_without_a_write_token_says_how_to_give_one(hub_factory, monkeypatch):
    monkeypatch.setenv("CAL_TOKENS", "read:" + "r" * 32 + ",write:" + "w" * 32)
    monkeypatch.delenv("SMARTANOM_TOKEN", raising=False)
    hub = await hub_factory(AUTH_HUB)

    async def calibrate(*token):
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "smartanom.cli", "calibrate", "1", "--url", hub.url, *token,
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )
        out, _ = await asyncio.wait_for(proc.communicate(), 30)
        return proc.returncode, out.decode()

    for token in ((), ("--token", "r" * 32), ("--token", "x" * 32)):
        code, out = await calibrate(*token)
        assert code == 1 and "give a write token with --token or $SMARTANOM_TOKEN" in out, out
        assert "r" * 32 not in out and "x" * 32 not in out
    assert not hub.calibration.is_calibrating(1)


DERIVED_HUB = """
storage:
  flush_interval: 0.05
devices:
  - id: 2
    name: Room
    offline_after: 30
    sensors:
      - {id: 5, type: air_temperature}
      - {id: 6, type: humidity}
      - {id: 7, type: vpd}
derived:
  - {sensor: 7, kind: vpd, air_temperature: 5, humidity: 6, leaf_offset: -2, max_age: 0.5}
"""


@pytest.mark.gen_test(timeout=30)
async def test_derived_vpd_is_streamed_stored_and_stops_when_an_input_is_stale(hub_factory, ws_client):
    hub = await hub_factory(DERIVED_HUB)
    sender = await ws_client(hub, "/ws/sensor-data/")
    vpd = await ws_client(hub, "/ws/sensor/7/")
    await sender.send({"type": "sensor_data", "sensor_id": 5, "value": 26.0})
    await sender.send({"type": "sensor_data", "sensor_id": 6, "value": 60.0})
    update = await vpd.receive("sensor_data_update")
    assert update["sensor_type"] == "vpd" and update["unit"] == "kPa"
    assert update["value"] == pytest.approx(0.967, abs=0.0015)  # the worked example of tests/test_calibration_fit.py

    async def stored():
        page = await call(hub, "GET", "/api/sensors/7/readings")
        return page["readings"]

    assert (await until(stored))[0]["value"] == update["value"]
    await asyncio.sleep(0.6)  # beyond max_age (0.5 s): the air temperature is now stale
    await sender.send({"type": "sensor_data", "sensor_id": 6, "value": 65.0})
    assert [m for m in await vpd.nothing_within(0.5) if m["type"] == "sensor_data_update"] == []
    status = (await call(hub, "GET", "/api/derived"))["derived"][0]
    assert status["stale"] is True and "input air_temperature (sensor 5) last sent" in status["reason"]
    await sender.send({"type": "sensor_data", "sensor_id": 5, "value": 30.0})
    await sender.send({"type": "sensor_data", "sensor_id": 6, "value": 50.0})
    update = await vpd.receive("sensor_data_update")
    assert update["value"] == pytest.approx(1.658, abs=0.0015)
    assert (await call(hub, "GET", "/api/derived"))["derived"][0]["stale"] is False


TDS_HUB = """
storage:
  flush_interval: 0.05
devices:
  - id: 1
    name: Tank
    offline_after: 30
    sensors:
      - {id: 2, type: ec}
      - {id: 3, type: water_temperature}
      - {id: 4, type: tds}
derived:
  - {sensor: 4, kind: tds, ec: 2, max_age: 0.3}
"""


@pytest.mark.gen_test(timeout=30)
async def test_a_derived_sensor_whose_only_input_goes_quiet_is_logged_stale(hub_factory, ws_client, caplog):
    """TDS has one input: when EC stops, no input reading comes to find it stale. The log
    must still say so (docs/calibration.md), without anyone asking GET /api/derived."""
    caplog.set_level(logging.INFO, logger="smartanom.derived")
    hub = await hub_factory(TDS_HUB)
    sender = await ws_client(hub, "/ws/sensor-data/")
    tds = await ws_client(hub, "/ws/sensor/4/")
    await sender.send({"type": "sensor_data", "sensor_id": 2, "value": 1.5})
    assert (await tds.receive("sensor_data_update"))["value"] == pytest.approx(750.0)

    async def logged_stale():
        # The tank's other probe goes on reading; EC has stopped.
        await sender.send({"type": "sensor_data", "sensor_id": 3, "value": 21.0})
        return [r.getMessage() for r in caplog.records if "Sensor 4 (tds) is stale" in r.getMessage()]

    (line,) = await until(logged_stale, timeout=10)
    assert "input ec (sensor 2) last sent" in line


def test_derived_sensors_are_announced_over_mqtt(tmp_path):
    from smartanom.config import load_config
    from smartanom.testing import make_plugin_host

    path = tmp_path / "hub.yaml"
    path.write_text(DERIVED_HUB)
    registry = load_config(path, make_plugin_host().collect_platforms()).build_registry()
    messages = discovery_messages(registry, "h1", "homeassistant", Topics("smartanom", "h1"), device_availability=True, version="1")
    configs = [json.loads(m.payload) for m in messages if "sensor_7" in m.topic]
    assert len(configs) == 1 and configs[0]["unit_of_measurement"] == "kPa"
