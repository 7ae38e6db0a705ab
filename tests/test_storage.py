"""core/storage.py: every accepted reading ends up in SQLite; retention; a database that cannot be written."""

import asyncio
import json
import logging
import sqlite3
import time

import pytest
import tornado.httpclient

from smartanom import schema, storage
from smartanom.storage import Storage

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
    # On disk while the hub still runs (not only at shutdown); the deadline is generous
    # because a loaded machine may delay the writer thread well past one flush interval.
    assert await wait_for(lambda: rows(db) != [], timeout=10)
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


DEVICES = """
devices:
  - id: 1
    name: Tank
    offline_after: 3600
    sensors:
      - {id: 1, type: ph}
"""
DAY = 86400


def seed(path, rows):
    conn = storage.connect(path)
    schema.upgrade(conn)
    with conn:
        conn.executemany("INSERT INTO readings (sensor_id, ts, value) VALUES (1, ?, ?)", rows)
        conn.executemany("INSERT INTO device_status (device_id, ts, status) VALUES (1, ?, 'active')", [(ts,) for ts, _ in rows])
    conn.close()


def count(path, where="1"):
    conn = sqlite3.connect(path)
    try:
        return conn.execute(f"SELECT count(*) FROM readings WHERE {where}").fetchone()[0]
    finally:
        conn.close()


async def wait_for(condition, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    return condition()


@pytest.mark.gen_test(timeout=30)
async def test_retention_purges_old_rows_in_chunks_while_readings_flow(hub_factory, ws_client, tmp_path, monkeypatch):
    monkeypatch.setattr(storage, "PURGE_CHUNK", 500)  # several chunks, with flushes between them
    db = str(tmp_path / "old.db")
    now = time.time()
    seed(db, [(now - 40 * DAY + i, float(i)) for i in range(3000)] + [(now - 2 * DAY, 1.0), (now - 60, 2.0)])
    hub = await hub_factory(DEVICES + f"storage:\n  path: {db}\n  keep_days: 30\n  flush_interval: 0.05\n  purge_interval: 0.3\n")
    client = await ws_client(hub, "/ws/sensor-data/")
    for i in range(20):
        await client.request({"type": "sensor_data", "sensor_id": 1, "value": 7.0 + i / 100}, type="sensor_data_update")

    assert await wait_for(lambda: count(db, f"ts < {now - 30 * DAY}") == 0)
    assert await wait_for(lambda: count(db) == 2 + 20)  # the recent rows and everything sent live
    assert await wait_for(lambda: hub.storage.purged == 3000 * 2)  # readings and status rows
    # Periodic: rows that turn up old later are purged on a later round.
    seed(db, [(now - 31 * DAY, 5.0)])
    assert await wait_for(lambda: count(db, f"ts < {now - 30 * DAY}") == 0)


BROKEN = DEVICES + """
storage:
  path: {path}
  flush_interval: 0.05
  max_pending: 100
"""


@pytest.mark.gen_test(timeout=30)
async def test_an_unwritable_database_is_loud_refuses_before_dropping_and_recovers(hub_factory, ws_client, tmp_path, caplog):
    # A regular file where the database's directory should be: no one, root included, can create it.
    blocker = tmp_path / "data"
    blocker.write_text("not a directory")
    db = blocker / "hub.db"
    caplog.set_level(logging.ERROR, logger="smartanom.storage")
    hub = await hub_factory(BROKEN.replace("{path}", str(db)).replace("max_pending: 100", f"max_pending: 100\n  recovery_path: {tmp_path / 'recovery'}"))
    assert any("STORAGE FAILING" in r.getMessage() for r in caplog.records)

    client = await ws_client(hub, "/ws/sensor/1/")
    replies = [await client.request({"type": "sensor_data", "sensor_id": 1, "value": float(i)}) for i in range(150)]
    kinds = [r.get("code", r["type"]) for r in replies]
    # Live until memory holds 90% of max_pending; then refused, so nothing accepted is dropped.
    assert kinds == ["sensor_data_update"] * 90 + ["OVERLOADED"] * 60

    response = await tornado.httpclient.AsyncHTTPClient().fetch(f"http://127.0.0.1:{hub.port}/api/health", raise_error=False)
    health = json.loads(response.body)
    assert response.code == 503 and health["status"] == "degraded"
    assert health["storage"]["ok"] is False and "hub.db" in health["storage"]["error"]
    assert health["readings"] == {"accepted": 90, "stored": 0, "dropped": 0, "pending": 90}
    assert health["storage"]["lag"] > 0
    errors = [r for r in caplog.records if "STORAGE FAILING" in r.getMessage()]
    assert len(errors) == 1  # loud, but not once per flush

    # The disk is fixed: what was held in memory is written, and readings are accepted again.
    blocker.unlink()
    blocker.mkdir()
    assert await wait_for(lambda: hub.storage.stored == 90)
    assert hub.storage.error is None and hub.storage.pending == 0
    assert (await client.request({"type": "sensor_data", "sensor_id": 1, "value": 500.0}))["type"] == "sensor_data_update"
    assert count(str(db)) >= 90 and count(str(db), "value >= 90 AND value < 500") == 0


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


@pytest.mark.gen_test(timeout=60)
async def test_a_long_flush_interval_and_a_small_max_pending_drop_nothing(hub_factory, ws_client, tmp_path):
    # The config: flush_interval 5 with max_pending 500 dropped 761 of 3,001 acknowledged
    # readings while health said ok. Now the writer is woken early, and what it cannot take is refused.
    hub = await hub_factory(
        "server: {rate_limit: null}\n"
        "storage: {path: %s, flush_interval: 5, max_pending: 500}\n"
        "devices: [{id: 1, name: Tank, sensors: [{id: 1, type: ph}]}]\n" % (tmp_path / "b.db")
    )
    client = await ws_client(hub, "/ws/sensor/1/")
    for i in range(3001):
        client.conn.write_message('{"type":"sensor_data","value":%d}' % i)
    replies = [await client.receive(timeout=20) for _ in range(3001)]
    acked = [r["value"] for r in replies if r["type"] == "sensor_data_update"]
    assert {r.get("code") for r in replies if r["type"] == "error"} <= {"OVERLOADED"}
    await hub.stop()
    assert hub.storage.dropped == 0 and hub.storage.accepted == hub.storage.stored == len(acked)
    assert sorted(v for _, _, v in rows(tmp_path / "b.db")) == sorted(acked)


def test_refusal_and_early_flush_thresholds():
    small = Storage(":memory:", max_pending=500)
    assert (small._wake_at, small.backlog_at) == (125, 450)
    assert Storage(":memory:", max_pending=100_000).backlog_at == 90_000


@pytest.mark.gen_test
async def test_health_turns_degraded_the_moment_a_reading_is_dropped(hub_factory, caplog):
    hub = await hub_factory("devices: [{id: 1, name: Tank, sensors: [{id: 1, type: ph}]}]\n")
    http = tornado.httpclient.AsyncHTTPClient()
    assert (await http.fetch(f"{hub.url}/api/health")).code == 200
    hub.storage.dropped = 1  # as when a plugin thread's reading arrives past max_pending
    for _ in range(5):  # a probe every few seconds: one log line, not one per probe
        response = await http.fetch(f"{hub.url}/api/health", raise_error=False)
        assert response.code == 503 and "dropped" in json.loads(response.body)["problems"][0]
    lines = [r for r in caplog.records if r.levelno >= logging.WARNING and r.name in ("smartanom.api", "tornado.access")]
    assert [r.getMessage()[:16] for r in lines] == ["Health degraded:"]
