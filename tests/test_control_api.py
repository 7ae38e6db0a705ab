"""Outputs over HTTP and WebSocket on a real hub: state, overrides, the record, output_state."""

import asyncio
import json

import pytest
from tornado.httpclient import AsyncHTTPClient

from smartanom.control.journal import Journal

HUB = """
devices:
  - id: 1
    name: Tank
    sensors:
      - {id: 1, type: ph}
  - id: 2
    name: Nursery
outputs:
  - id: lights
    name: Grow lights
    type: simulated
    device: 1
  - id: acid
    name: pH-down pump
    type: simulated
    device: 1
    role: ph_down
control:
  dosing:
    - id: ph
      sensor: 1
      output: acid
      direction: down
      target: 5.8
      pump_ml_per_s: 1.0
      gain_ml: 20
      max_dose_ml: 10
      max_ml_per_hour: 40
      max_ml_per_day: 150
      require_calibration: false  # not what these tests are about (tests/test_control_trust.py is)
"""
READ = "read-token-0123456789abcdef"
WRITE = "write-token-0123456789abcdef"


async def call(hub, method, path, body=None, token=None):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    if method != "GET":
        headers["Content-Type"] = "application/json"
    response = await AsyncHTTPClient().fetch(
        hub.url + path, method=method, headers=headers, raise_error=False,
        body=None if body is None else json.dumps(body), allow_nonstandard_methods=True,
    )
    return response.code, json.loads(response.body)


@pytest.mark.gen_test(timeout=30)
async def test_outputs_start_safe_and_an_override_is_switched_recorded_and_streamed(hub_factory, ws_client):
    hub = await hub_factory(HUB)
    everything = await ws_client(hub, "/ws/sensor-data/")
    nursery = await ws_client(hub, "/ws/device/2/")
    code, listing = await call(hub, "GET", "/api/outputs")
    assert code == 200
    outputs = {o["id"]: o for o in listing["outputs"]}
    assert outputs["lights"]["state"] == "off" and outputs["lights"]["source"] == "start"
    assert outputs["acid"]["controlled"] is True and listing["dosing"][0]["held"]  # no pH reading yet

    code, lights = await call(hub, "POST", "/api/outputs/lights/override", {"state": "on", "duration": 60})
    assert code == 200, lights
    assert lights["state"] == "on" and lights["override"]["state"] == "on"
    message = await everything.receive(type="output_state")
    assert message["output_id"] == "lights" and message["state"] == "on" and message["source"] == "manual"
    assert message["device_id"] == 1 and message["dry_run"] is False and message["timestamp"].endswith("Z")
    assert "override by anonymous for 60 s" in message["reason"]
    assert await nursery.nothing_within(0.2) == []  # another device's stream does not get it

    code, record = await call(hub, "GET", "/api/outputs/actuations?output=lights")
    assert [(a["state"], a["source"]) for a in record["actuations"]] == [("on", "manual"), ("off", "start")]

    code, back = await call(hub, "DELETE", "/api/outputs/lights/override")
    assert code == 200 and back["state"] == "off" and back["override"] is None


@pytest.mark.gen_test(timeout=30)
async def test_bad_overrides_are_refused_with_reasons(hub_factory):
    hub = await hub_factory(HUB)
    code, error = await call(hub, "POST", "/api/outputs/acid/override", {"state": "on", "duration": 10})
    assert code == 409 and "dosing pump" in error["error"]["message"]
    code, error = await call(hub, "POST", "/api/outputs/lights/override", {"state": "on"})
    assert code == 400 and "always expires" in error["error"]["message"]
    code, error = await call(hub, "POST", "/api/outputs/lights/override", {"state": "on", "duration": 10**9})
    assert code == 409 and "max_override" in error["error"]["message"]
    code, error = await call(hub, "POST", "/api/outputs/nope/override", {"state": "on", "duration": 1})
    assert code == 404 and error["error"]["code"] == "UNKNOWN_OUTPUT"
    code, ok = await call(hub, "POST", "/api/outputs/acid/override", {"state": "off", "duration": 10})
    assert code == 200 and ok["override"]["state"] == "off"
    form = await AsyncHTTPClient().fetch(hub.url + "/api/outputs/lights/override", method="POST", raise_error=False,
                                         body="state=on&duration=60", headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert form.code == 415  # a plain form post from a page elsewhere switches nothing


@pytest.mark.gen_test(timeout=30)
async def test_overrides_need_the_write_role(hub_factory, tmp_path):
    (tmp_path / "secrets.yaml").write_text(f"tokens:\n  - {{name: tablet, role: read, token: {READ}}}\n  - {{name: ann, role: write, token: {WRITE}}}\n")
    hub = await hub_factory(HUB + "auth:\n  enabled: true\n  tokens_file: secrets.yaml\n")
    assert (await call(hub, "GET", "/api/outputs"))[0] == 401
    assert (await call(hub, "GET", "/api/outputs", token=READ))[0] == 200
    code, error = await call(hub, "POST", "/api/outputs/lights/override", {"state": "on", "duration": 5}, token=READ)
    assert code == 403 and "write role" in error["error"]["message"]
    code, lights = await call(hub, "POST", "/api/outputs/lights/override", {"state": "on", "duration": 5}, token=WRITE)
    assert code == 200 and lights["reason"] == "override by ann for 5 s"


@pytest.mark.gen_test(timeout=30)
async def test_stopping_the_hub_puts_every_output_in_its_safe_state(hub_factory, tmp_path):
    hub = await hub_factory(HUB)
    await call(hub, "POST", "/api/outputs/lights/override", {"state": "on", "duration": 600})
    await hub.stop()
    journal = Journal(hub.config.storage.path)
    journal.open()
    last = {}
    for row in reversed(journal.actuations(limit=100)):
        last[row["output_id"]] = (row["state"], row["source"])
    journal.close()
    assert last == {"lights": ("off", "safe"), "acid": ("off", "safe")}


@pytest.mark.gen_test(timeout=30)
async def test_the_simulated_tank_closes_the_loop_in_a_running_hub(hub_factory, ws_client):
    hub = await hub_factory("""
devices:
  - id: 1
    name: Tank
    sensors:
      - {id: 1, type: ph}
      - {id: 2, type: water_level}
      - {id: 3, type: humidity}
plugins:
  - platform: simulated
    device: 1
    interval: 0.05
    seed: 1
    tank: true
outputs:
  - {id: acid, name: pH-down pump, type: simulated, device: 1, role: ph_down}
control:
  period: 0.1
  dosing:
    - {id: ph, sensor: 1, output: acid, direction: down, target: 5.8, pump_ml_per_s: 1.0, gain_ml: 1,
       max_dose_ml: 0.3, min_dose_ml: 0.1, max_ml_per_hour: 100, max_ml_per_day: 100, mixing_seconds: 0.2,
       level: {sensor: 2, min: 10}, require_calibration: false}
""")
    client = await ws_client(hub, "/ws/sensor-data/")
    on = await client.receive(type="output_state", timeout=10)
    while not (on["source"] == "dose" and on["state"] == "on"):
        on = await client.receive(type="output_state", timeout=10)
    assert on["output_id"] == "acid" and "because sensor 1 = " in on["reason"]
    off = await client.receive(type="output_state", timeout=10)
    assert off["state"] == "off" and off["source"] == "dose"
    tank = hub.shared[("simulated", "tank", 1)]
    assert tank.dosed_ml["ph_down"] >= 0.25  # the pulse really ran the (simulated) pump


@pytest.mark.gen_test(timeout=30)
async def test_a_calibration_session_holds_dosing_on_its_sensor(hub_factory):
    hub = await hub_factory(HUB.replace("control:\n", "control:\n  period: 0.05\n"))
    sensor = hub.registry.sensor(1)
    doser = hub.control.dosers[0]
    hub.accept_reading(sensor, 6.5, None)
    hub.calibration.begin(sensor)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 5
    while doser.held != "sensor 1 is being calibrated":
        assert loop.time() < deadline, doser.held
        await asyncio.sleep(0.02)
    assert hub.control.journal.doses("ph") == []
    record = hub.control.journal.actuations(limit=5, output_id="acid")
    assert record[0]["source"] == "interlock" and "being calibrated" in record[0]["reason"]


@pytest.mark.gen_test(timeout=30)
async def test_a_sensor_fault_alert_holds_dosing_and_a_range_alert_does_not(hub_factory):
    hub = await hub_factory(HUB.replace("control:\n", "control:\n  period: 0.05\n"))
    doser = hub.control.dosers[0]
    hub.alerts.raise_alert("probe-range", "range", "pH 6.5 above 6.2", sensor_id=1)
    hub.accept_reading(hub.registry.sensor(1), 6.5, None)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 5
    while not hub.control.journal.doses("ph"):  # a range alert is about the tank: dosing goes on
        assert loop.time() < deadline, doser.held
        await asyncio.sleep(0.02)
    hub.alerts.raise_alert("probe-fault", "no_data", "no reading from sensor 1 for 300 s", sensor_id=1)
    while doser.held != "alert on sensor 1: no reading from sensor 1 for 300 s":
        assert loop.time() < deadline + 5, doser.held
        await asyncio.sleep(0.02)


@pytest.mark.gen_test(timeout=30)
async def test_the_hub_holds_dosing_on_a_sensor_with_no_calibration_on_record(hub_factory):
    hub = await hub_factory(HUB.replace("control:\n", "control:\n  period: 0.05\n").replace("      require_calibration: false", "      require_calibration: true"))
    doser = hub.control.dosers[0]
    hub.accept_reading(hub.registry.sensor(1), 6.5, None)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 5
    while not (doser.held or "").startswith("sensor 1 has no calibration on record"):
        assert loop.time() < deadline, doser.held
        await asyncio.sleep(0.02)
    assert "smartanom calibrate 1" in doser.held and hub.control.journal.doses("ph") == []
    record = hub.control.journal.actuations(limit=5, output_id="acid")
    assert record[0]["source"] == "interlock" and "no calibration on record" in record[0]["reason"]
