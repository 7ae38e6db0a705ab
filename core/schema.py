"""The database schema and its versions.

The version is SQLite's `PRAGMA user_version`. `MIGRATIONS` lists every step
from an empty file to today's schema, each with its number; `upgrade()` runs the
ones a database has not had, in order, each in its own transaction, so a file
from any earlier release is brought up to date in place at start.

Version numbers are reserved per topic so that branches do not collide:
1 the first release's tables, 2 alerts, 3 calibration, 4 history rollups,
5 outputs and actuations. Add a step at the end; never edit a released one.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    sql: str


MIGRATIONS: list[Migration] = [
    Migration(1, "readings and device status (the first release)", """
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
"""),
    Migration(2, "alerts, their history, and every notification attempt (core/alerts/store.py)", """
CREATE TABLE IF NOT EXISTS alerts (
    id INTEGER PRIMARY KEY,
    key TEXT NOT NULL,           -- the condition, e.g. sensor_2_range; one active alert per key
    kind TEXT NOT NULL,
    device_id INTEGER,
    sensor_id INTEGER,
    severity TEXT NOT NULL,
    state TEXT NOT NULL,         -- firing | acknowledged | resolved
    value REAL,
    threshold REAL,
    trigger TEXT NOT NULL DEFAULT '',
    message TEXT NOT NULL,
    recommendation TEXT NOT NULL DEFAULT '',
    started_at REAL NOT NULL,
    acknowledged_at REAL,
    acknowledged_by TEXT,
    resolved_at REAL
);
CREATE INDEX IF NOT EXISTS alerts_state_started ON alerts (state, started_at);
CREATE TABLE IF NOT EXISTS alert_events (
    id INTEGER PRIMARY KEY,
    alert_id INTEGER NOT NULL,
    ts REAL NOT NULL,
    event TEXT NOT NULL,         -- started | escalated | acknowledged | resolved
    severity TEXT NOT NULL,
    value REAL
);
CREATE INDEX IF NOT EXISTS alert_events_alert ON alert_events (alert_id, ts);
CREATE TABLE IF NOT EXISTS alert_notifications (
    id INTEGER PRIMARY KEY,
    alert_id INTEGER NOT NULL,
    ts REAL NOT NULL,
    notice TEXT NOT NULL,        -- started | escalated | repeat | resolved
    target TEXT NOT NULL,        -- the Apprise URL with secrets masked
    attempt INTEGER NOT NULL,
    ok INTEGER NOT NULL,
    error TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS alert_notifications_alert ON alert_notifications (alert_id, ts);
"""),
]

LATEST = max(m.version for m in MIGRATIONS)


class SchemaTooNew(Exception):
    """The database was written by a newer release of the hub."""


def version(conn: sqlite3.Connection) -> int:
    return conn.execute("PRAGMA user_version").fetchone()[0]


def upgrade(conn: sqlite3.Connection) -> list[Migration]:
    """Bring the database to LATEST; returns the steps that ran.

    The first release set no version (0) and its statements are all
    `IF NOT EXISTS`, so a database it made takes step 1 harmlessly.
    """
    current = version(conn)
    if current > LATEST:
        raise SchemaTooNew(f"the database has schema version {current}; this hub knows up to {LATEST}: upgrade the hub, or restore a backup made by this release")
    done = []
    for step in sorted(MIGRATIONS, key=lambda m: m.version):
        if step.version <= current:
            continue
        # executescript commits first and runs statements outside a transaction
        # of ours, so wrap each step (and its version bump) in one explicitly.
        try:
            conn.executescript(f"BEGIN;\n{step.sql}\nPRAGMA user_version = {step.version};\nCOMMIT;")
        except BaseException:
            if conn.in_transaction:
                conn.rollback()
            raise
        done.append(step)
    return done
