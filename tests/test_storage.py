"""core/storage.py: every accepted reading ends up in SQLite."""

import asyncio
import sqlite3

import pytest

from core.storage import Storage

HUB = """
storage:
  path: {path}
  flush_interval: 0.2
devices:
  - id: 1
    name: Tank
    sensors: [{{id: 1, type: ph}}, {{id: 2, type: ec}}]
"""


def rows(path):
    conn = sqlite3.connect(path)
    try:
        return conn.execute("SELECT sensor_id, ts, value FROM readings ORDER BY id").fetchall()
    finally:
        conn.close()


@pytest.mark.gen_test(timeout=20)
async def test_readings_are_in_sqlite_after_a_clean_shutdown(hub_factory, ws_client, tmp_path):
    db = tmp_path / "nested" / "hub.db"
    hub = await hub_factory(HUB.format(path=db))
    client = await ws_client(hub, "/ws/sensor-data/")
    for i in range(300):
        await client.send({"type": "sensor_data", "sensor_id": 1 + i % 2, "value": i / 10, "timestamp": "2025-09-11T15:30:00Z"})
    for _ in range(300):
        await client.receive(type="sensor_data_update")
    await hub.stop()
    stored = rows(db)
    assert len(stored) == 300 == hub.storage.accepted == hub.storage.stored
    assert stored[0] == (1, 1757604600.0, 0.0) and stored[-1][2] == 29.9
    assert hub.storage.dropped == 0


@pytest.mark.gen_test(timeout=20)
async def test_writes_happen_within_the_flush_interval_while_running(hub_factory, ws_client, tmp_path):
    db = tmp_path / "hub.db"
    hub = await hub_factory(HUB.format(path=db))
    client = await ws_client(hub, "/ws/sensor/2/")
    await client.request({"type": "sensor_data", "value": 1.5}, type="sensor_data_update")
    await asyncio.sleep(0.6)
    assert [(r[0], r[2]) for r in rows(db)] == [(2, 1.5)]


@pytest.mark.gen_test(timeout=20)
async def test_status_changes_are_stored(hub_factory, ws_client, tmp_path):
    db = tmp_path / "hub.db"
    hub = await hub_factory(HUB.format(path=db))
    client = await ws_client(hub, "/ws/device/1/")
    await client.request({"type": "device_status", "status": "maintenance"}, type="device_status")
    await hub.stop()
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT device_id, status FROM device_status").fetchall() == [(1, "maintenance")]
    conn.close()


def test_database_is_in_wal_mode(tmp_path):
    storage = Storage(tmp_path / "x.db")
    storage.open()
    storage.close()
    conn = sqlite3.connect(tmp_path / "x.db")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()


def test_history_queries_read_only_the_index_also_on_databases_made_before(tmp_path):
    path = tmp_path / "old.db"
    old = sqlite3.connect(path)
    old.executescript(
        "CREATE TABLE readings (id INTEGER PRIMARY KEY, sensor_id INTEGER NOT NULL, ts REAL NOT NULL, value REAL NOT NULL);"
        "CREATE INDEX readings_sensor_ts ON readings (sensor_id, ts);"
        "INSERT INTO readings (sensor_id, ts, value) VALUES (1, 1.0, 6.5);"
    )
    old.close()
    storage = Storage(path)
    storage.open()
    storage.close()
    conn = sqlite3.connect(path)
    try:
        indexes = {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
        assert "readings_sensor_ts" not in indexes
        plan = conn.execute(
            "EXPLAIN QUERY PLAN SELECT CAST(ts / 60 AS INTEGER) AS b, MIN(value), AVG(value), MAX(value) "
            "FROM readings WHERE sensor_id = 1 AND ts >= 0 GROUP BY b"
        ).fetchall()
        assert "COVERING INDEX" in str(plan)
        assert conn.execute("SELECT value FROM readings").fetchall() == [(6.5,)]
    finally:
        conn.close()
