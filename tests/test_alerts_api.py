"""GET /api/alerts and POST /api/alerts/{id}/ack on a real hub: roles, errors, the
device and sensor streams, and maintenance silencing a device."""

import json

import pytest
from tornado.httpclient import AsyncHTTPClient

from alert_receivers import wait_for

READ, WRITE = "r" * 20, "w" * 20

HUB = """
alerts:
  for: 0
  no_data_after: 0
devices:
  - id: 1
    name: Tank
    profile: basil
    sensors:
      - {id: 1, type: ph}
  - id: 2
    name: Other
    sensors:
      - {id: 2, type: ec, alert: {max: 2.0}}
"""


async def call(hub, path, method="GET", body=None, token=None):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = await AsyncHTTPClient().fetch(hub.url + path, method=method, body=body, headers=headers, raise_error=False,
                                             allow_nonstandard_methods=True)
    return response.code, json.loads(response.body)


@pytest.mark.gen_test
async def test_ack_needs_a_write_token_when_auth_is_on(hub_factory, ws_client, monkeypatch):
    monkeypatch.setenv("HUB_TOKENS", f"read:{READ}, write:{WRITE}")
    hub = await hub_factory(HUB + "auth:\n  enabled: true\n  tokens_env: HUB_TOKENS\n")
    hub.accept_reading(hub.registry.sensor(1), 7.5, None)
    (alert,) = hub.alerts.active()
    assert (await call(hub, "/api/alerts"))[0] == 401
    code, listing = await call(hub, "/api/alerts", token=READ)
    assert code == 200 and listing["alerts"][0]["severity"] == "critical"
    code, error = await call(hub, f"/api/alerts/{alert.id}/ack", "POST", b"", token=READ)
    assert code == 403 and error["error"]["code"] == "FORBIDDEN"
    code, acked = await call(hub, f"/api/alerts/{alert.id}/ack", "POST", b"", token=WRITE)
    assert code == 200 and acked["acknowledged_by"] == "$HUB_TOKENS[2]"  # the token's name


@pytest.mark.gen_test
async def test_errors_name_the_problem(hub_factory):
    hub = await hub_factory(HUB)
    code, error = await call(hub, "/api/alerts/999/ack", "POST", b"")
    assert code == 404 and error["error"]["code"] == "UNKNOWN_ALERT"
    code, error = await call(hub, "/api/alerts?state=old")
    assert code == 400 and error["error"]["parameter"] == "state"
    hub.accept_reading(hub.registry.sensor(1), 7.5, None)
    (alert,) = hub.alerts.active()
    code, error = await call(hub, f"/api/alerts/{alert.id}/ack", "POST", b"{not json")
    assert code == 400 and error["error"]["code"] == "INVALID_BODY"
    code, rules = await call(hub, "/api/alerts/rules")
    by_sensor = {r["sensor_id"]: r for r in rules["rules"]}
    assert (by_sensor[1]["profile"], by_sensor[1]["min"], by_sensor[1]["critical_max"]) == ("basil", 5.5, 7.0)
    assert (by_sensor[2]["profile"], by_sensor[2]["max"], by_sensor[2]["min"]) == (None, 2.0, None)


@pytest.mark.gen_test
async def test_device_and_sensor_streams_get_only_their_own_alerts(hub_factory, ws_client):
    hub = await hub_factory(HUB)
    device1, sensor2 = await ws_client(hub, "/ws/device/1/"), await ws_client(hub, "/ws/sensor/2/")
    hub.accept_reading(hub.registry.sensor(2), 2.5, None)
    hub.accept_reading(hub.registry.sensor(1), 7.5, None)
    assert (await sensor2.receive(type="alert"))["sensor_id"] == 2
    assert (await device1.receive(type="alert"))["sensor_id"] == 1
    assert [m for m in await sensor2.nothing_within(0.3) if m["type"] == "alert"] == []
    assert [m for m in await device1.nothing_within(0.3) if m["type"] == "alert"] == []


@pytest.mark.gen_test
async def test_maintenance_silences_a_device(hub_factory, ws_client):
    hub = await hub_factory(HUB)
    client = await ws_client(hub, "/ws/sensor-data/")
    await client.request({"type": "device_status", "device_id": 1, "status": "maintenance"}, type="device_status")
    for _ in range(5):
        hub.accept_reading(hub.registry.sensor(1), 9.0, None)  # probe out of the tank for cleaning
    assert [m for m in await client.nothing_within(0.5) if m["type"] == "alert"] == []
    assert hub.alerts.active() == []


@pytest.mark.gen_test
async def test_an_unwritable_database_does_not_stop_alerting(hub_factory, ws_client, tmp_path):
    blocker = tmp_path / "data"
    blocker.write_text("a file where the database's directory should be")
    hub = await hub_factory(HUB + f"storage:\n  path: {blocker / 'hub.db'}\n")
    client = await ws_client(hub, "/ws/sensor-data/")
    hub.accept_reading(hub.registry.sensor(1), 7.5, None)
    assert (await client.receive(type="alert"))["severity"] == "critical"
    code, listing = await call(hub, "/api/alerts")
    assert code == 200 and listing["alerts"][0]["notifications"] == []
    code, health = await call(hub, "/api/health")
    assert code == 503 and health["alerts"]["active"] == 1 and health["alerts"]["store_error"]
    assert any(p.startswith("alerts cannot be stored") for p in health["problems"])


@pytest.mark.gen_test
async def test_a_due_calibration_is_an_alert(hub_factory, ws_client):
    """core/calibration raises its reminder through the engine's raise_alert (docs/calibration.md)."""
    hub = await hub_factory(HUB + "calibration:\n  sensors:\n    - sensor: 1\n")
    # Listed for calibration and never calibrated: due as soon as the reminder check runs.
    (alert,) = await wait_for(lambda: hub.alerts.active_for_sensor(1), what="the calibration reminder")
    assert (alert.kind, alert.key, alert.severity, alert.device_id) == ("calibration_due", "sensor_1_calibration_due", "warning", 1)
    assert "never been calibrated" in alert.message and "smartanom calibrate 1" in alert.recommendation
    code, listing = await call(hub, "/api/alerts")
    assert [a["kind"] for a in listing["alerts"]] == ["calibration_due"]


@pytest.mark.gen_test
async def test_a_database_at_a_later_version_without_the_alert_tables_gets_them(hub_factory, tmp_path):
    """A development database that took step 3 (calibration) before step 2 (alerts) was merged."""
    import sqlite3

    from smartanom import schema

    path = tmp_path / "dev.db"
    conn = sqlite3.connect(path)
    for step in schema.MIGRATIONS:
        if step.version != 2:
            conn.executescript(step.sql)
    conn.execute(f"PRAGMA user_version = {schema.LATEST}")
    conn.commit()
    conn.close()
    hub = await hub_factory(HUB + f"storage:\n  path: {path}\n")
    hub.accept_reading(hub.registry.sensor(1), 7.5, None)
    code, listing = await call(hub, "/api/alerts?state=all")
    assert code == 200 and hub.alerts.store.error is None


@pytest.mark.gen_test
async def test_metrics_count_active_alerts(hub_factory):
    hub = await hub_factory(HUB)
    hub.accept_reading(hub.registry.sensor(1), 7.5, None)
    hub.accept_reading(hub.registry.sensor(2), 2.1, None)
    response = await AsyncHTTPClient().fetch(hub.url + "/metrics")
    text = response.body.decode()
    assert 'smartanom_alerts_active{severity="critical"} 1.0' in text
    assert 'smartanom_alerts_active{severity="warning"} 1.0' in text
    assert 'smartanom_alert_notifications_total{result="failed"} 0.0' in text


@pytest.mark.gen_test
async def test_an_alert_whose_rule_left_the_config_resolves_at_start(hub_factory, tmp_path):
    db = tmp_path / "kept.db"
    hub = await hub_factory(HUB + f"storage:\n  path: {db}\n")
    hub.accept_reading(hub.registry.sensor(2), 2.5, None)
    assert [a.key for a in hub.alerts.active()] == ["sensor_2_range"]
    await hub.stop()
    hub = await hub_factory(HUB.replace("alert: {max: 2.0}", "alert: {enabled: false}") + f"storage:\n  path: {db}\n")
    assert hub.alerts.active() == []
    code, past = await call(hub, "/api/alerts?state=resolved")
    assert [a["key"] for a in past["alerts"]] == ["sensor_2_range"]
