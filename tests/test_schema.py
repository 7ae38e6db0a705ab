"""core/schema.py: a database from the previous release is upgraded in place at the hub's
start, keeping every row and a copy of itself; a newer database is refused, untouched."""

import hashlib
import json
import sqlite3
import subprocess
import sys
import textwrap

import pytest
import tornado.httpclient

from schema_upgrade import HUB_YAML, assert_upgraded, database_at, fill, table_rows, upgrade_through_hub
from smartanom import schema

FIRST_RELEASE_ROWS = {
    "readings": [
        {"sensor_id": 1, "ts": 1757604600.0, "value": 6.02},
        {"sensor_id": 1, "ts": 1757604601.25, "value": 0.1 + 0.2},  # not 0.3: stored bit for bit
        {"sensor_id": 2, "ts": 1757604600.5, "value": 1.85},
        {"sensor_id": 3, "ts": 1757604602.0, "value": -3.5},
        {"sensor_id": 3, "ts": 946684800.0, "value": 1e-300},
        {"sensor_id": 2, "ts": 1757604603.0, "value": 1.7976931348623157e308},
    ]
    + [{"sensor_id": 1 + i % 3, "ts": 1757600000.0 + i, "value": i / 7} for i in range(500)],
    "device_status": [
        {"device_id": 1, "ts": 1757604600.0, "status": "active", "reason": ""},
        {"device_id": 2, "ts": 1757604605.0, "status": "maintenance", "reason": 'set by a WebSocket client: "cleaning" \u2013 pH probe'},
        {"device_id": 1, "ts": 1757604700.0, "status": "inactive", "reason": "no reading for 60 s"},
    ],
}


@pytest.mark.gen_test(timeout=30)
async def test_a_first_release_database_is_upgraded_at_start_keeping_every_row(hub_factory, tmp_path):
    db = tmp_path / "smartanom.db"
    conn = database_at(db, 0)
    before = fill(conn, FIRST_RELEASE_ROWS)
    conn.close()

    await upgrade_through_hub(hub_factory, db)

    kept = assert_upgraded(db, before)
    assert kept.name.startswith("smartanom.db.schema-v0-")
    assert len(table_rows(db, "readings", ["value"])) == len(before["readings"])


@pytest.mark.gen_test(timeout=30)
async def test_upgraded_history_is_served_by_the_api(hub_factory, tmp_path):
    db = tmp_path / "smartanom.db"
    conn = database_at(db, 0)
    fill(conn, {"readings": FIRST_RELEASE_ROWS["readings"][:4]})
    conn.close()
    hub = await hub_factory(HUB_YAML.format(path=db))
    response = await tornado.httpclient.AsyncHTTPClient().fetch(f"{hub.url}/api/sensors/1/readings?order=asc")
    values = [r["value"] for r in json.loads(response.body)["readings"]]
    assert values == [6.02, 0.1 + 0.2]


def test_a_new_database_gets_the_latest_version_and_no_copy(tmp_path):
    conn = sqlite3.connect(tmp_path / "new.db")
    assert [m.version for m in schema.upgrade(conn)] == [m.version for m in schema.MIGRATIONS]
    assert schema.version(conn) == schema.LATEST
    assert schema.upgrade(conn) == []  # a second start has nothing to do
    conn.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["new.db"]


def test_migrations_are_listed_in_order_once_each():
    # Reserved numbers (2 alerts, 3 calibration, ...) may land in any order, so gaps are allowed.
    versions = [m.version for m in schema.MIGRATIONS]
    assert versions == sorted(set(versions)) and versions[0] == 1


def newer_database(path):
    conn = database_at(path, schema.LATEST)
    fill(conn, {"readings": FIRST_RELEASE_ROWS["readings"][:3]})
    conn.execute(f"PRAGMA user_version = {schema.LATEST + 1}")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_hub_refuses_a_newer_database_at_start_with_a_clear_message(tmp_path):
    db = tmp_path / "hub.db"
    digest = newer_database(db)
    config = tmp_path / "hub.yaml"
    config.write_text(textwrap.dedent(HUB_YAML.format(path=db)))

    run = subprocess.run([sys.executable, "-m", "smartanom.cli", "run", "--config", str(config), "--port", "0"], capture_output=True, text=True, timeout=60)
    assert run.returncode == 2
    assert "Traceback" not in run.stderr
    assert f"Cannot start: the database {db} has schema version {schema.LATEST + 1}, written by a newer SmarTanom Hub" in run.stderr
    assert "smartanom restore" in run.stderr

    check = subprocess.run([sys.executable, "-m", "smartanom.cli", "check-config", str(config)], capture_output=True, text=True, timeout=60)
    assert check.returncode == 2
    assert f"{config}: storage.path: the database {db} has schema version {schema.LATEST + 1}" in check.stderr

    assert hashlib.sha256(db.read_bytes()).hexdigest() == digest
    assert not list(tmp_path.glob("*.bak"))  # nothing was upgraded, so nothing copied


def test_check_config_accepts_an_older_database(tmp_path):
    db = tmp_path / "hub.db"
    database_at(db, 0).close()
    config = tmp_path / "hub.yaml"
    config.write_text(textwrap.dedent(HUB_YAML.format(path=db)))
    check = subprocess.run([sys.executable, "-m", "smartanom.cli", "check-config", str(config)], capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stderr
    assert schema.check_file(db) is None


def test_no_room_for_the_copy_means_no_upgrade_and_nothing_changed(tmp_path, monkeypatch):
    db = tmp_path / "smartanom.db"
    conn = database_at(db, 0)
    before = fill(conn, {"readings": FIRST_RELEASE_ROWS["readings"][:50]})
    conn.close()
    # A full SD card cannot be made portably in a test: report almost no free space instead.
    real = schema.shutil.disk_usage
    monkeypatch.setattr(schema.shutil, "disk_usage", lambda path: real(path)._replace(free=1000))

    from smartanom.storage import Storage

    storage = Storage(db)
    storage.open()
    storage.close()
    assert "a copy of it is kept first, and that needs" in storage.error and "MB are free" in storage.error
    check = sqlite3.connect(db)
    assert schema.version(check) == 0
    check.close()
    assert table_rows(db, "readings", ["sensor_id", "ts", "value"]) == {r["id"]: {k: r[k] for k in ("sensor_id", "ts", "value")} for r in before["readings"]}
    assert not list(tmp_path.glob("*.bak*"))
