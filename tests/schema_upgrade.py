"""Helpers for the schema rule: every change to the schema comes with a migration
(core/schema.py) AND a test that upgrades a database of the previous version,
with real rows in it, through the hub's own start, and checks every row.

A test for migration N (docs/schema.md shows the whole of one):

    async def test_upgrade_to_N_keeps_every_row(hub_factory, tmp_path):
        db = tmp_path / "old.db"
        conn = database_at(db, N - 1)              # what release N-1 wrote
        before = fill(conn, {"readings": [...], "your_table": [...]})
        conn.close()
        await upgrade_through_hub(hub_factory, db)  # Hub.start upgrades it
        assert_upgraded(db, before)                 # version, every row, the kept copy
        ... then check what migration N added (new columns' defaults, new tables) ...
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from smartanom import schema

# What the first release (0.1.0, before core/schema.py) created, word for word,
# with no version set (user_version 0). Frozen here: a release's schema is history.
FIRST_RELEASE_SQL = """
CREATE TABLE IF NOT EXISTS readings (
    id INTEGER PRIMARY KEY,
    sensor_id INTEGER NOT NULL,
    ts REAL NOT NULL,            -- UTC seconds since the epoch
    value REAL NOT NULL
);
-- value is in the index so that history queries (core/history.py) read only the
-- index: min/mean/max over a week of 1 Hz readings runs ~2.5x faster (docs/perf.md).
CREATE INDEX IF NOT EXISTS readings_sensor_ts_value ON readings (sensor_id, ts, value);
DROP INDEX IF EXISTS readings_sensor_ts;  -- the narrower index of databases made before
CREATE TABLE IF NOT EXISTS device_status (
    id INTEGER PRIMARY KEY,
    device_id INTEGER NOT NULL,
    ts REAL NOT NULL,
    status TEXT NOT NULL,
    reason TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS device_status_device_ts ON device_status (device_id, ts);
"""

# A hub with the sensors and devices the rows below refer to, and no plugins:
# nothing but the upgrade touches the database.
HUB_YAML = """
storage:
  path: {path}
  flush_interval: 0.1
devices:
  - id: 1
    name: Tank
    sensors: [{{id: 1, type: ph}}, {{id: 2, type: ec}}]
  - id: 2
    name: Reservoir
    sensors: [{{id: 3, type: temperature}}]
"""


def database_at(path: Path, version: int) -> sqlite3.Connection:
    """A database file as the release with schema `version` made it.

    Version 0 is the first release (FIRST_RELEASE_SQL). Version N replays
    migrations 1..N: a released migration is never edited, so that is exactly
    what release N wrote. WAL mode, as the hub uses it.
    """
    conn = sqlite3.connect(str(path))
    conn.execute("PRAGMA journal_mode=WAL")
    if version == 0:
        conn.executescript(FIRST_RELEASE_SQL)
    else:
        for step in schema.MIGRATIONS:
            if step.version <= version:
                conn.executescript(f"BEGIN;\n{step.sql}\nPRAGMA user_version = {step.version};\nCOMMIT;")
    assert schema.version(conn) == version
    return conn


def fill(conn: sqlite3.Connection, rows: dict[str, list[dict]]) -> dict[str, list[dict]]:
    """Insert `rows` (table -> list of column dicts); returns them with their `id`s."""
    done = {}
    with conn:
        for table, items in rows.items():
            done[table] = []
            for item in items:
                columns = ", ".join(item)
                cursor = conn.execute(f"INSERT INTO {table} ({columns}) VALUES ({', '.join('?' * len(item))})", tuple(item.values()))
                done[table].append({"id": cursor.lastrowid, **item})
    return done


def table_rows(path: Path, table: str, columns: list[str]) -> dict[int, dict]:
    """Every row of `table`, id -> {column: value} for `columns`."""
    conn = sqlite3.connect(f"{Path(path).resolve().as_uri()}?mode=ro", uri=True)
    try:
        query = f"SELECT id, {', '.join(columns)} FROM {table} ORDER BY id"
        return {row[0]: dict(zip(columns, row[1:])) for row in conn.execute(query)}
    finally:
        conn.close()


async def upgrade_through_hub(hub_factory, path: Path, yaml: str = HUB_YAML):
    """Start a hub on the database at `path` (its start upgrades it), stop it; returns the hub."""
    hub = await hub_factory(yaml.format(path=path))
    await hub.stop()
    return hub


def assert_upgraded(path: Path, before: dict[str, list[dict]]) -> Path:
    """The database is at the latest version and every row of `before` is there
    unchanged (same id, same values); the copy kept before the upgrade holds
    exactly `before`. Returns that copy's path."""
    conn = sqlite3.connect(str(path))
    try:
        assert schema.version(conn) == schema.LATEST
    finally:
        conn.close()
    for table, items in before.items():
        columns = [c for c in items[0] if c != "id"]
        now = table_rows(path, table, columns)
        for item in items:
            expected = {c: item[c] for c in columns}
            assert now.get(item["id"]) == expected, f"{table} row {item['id']}: {now.get(item['id'])} after the upgrade, {expected} before"
    (kept,) = Path(path).parent.glob(f"{Path(path).name}.schema-v*.bak")
    for table, items in before.items():
        columns = [c for c in items[0] if c != "id"]
        assert table_rows(kept, table, columns) == {i["id"]: {c: i[c] for c in columns} for i in items}
    return kept
