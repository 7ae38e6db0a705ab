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
    Migration(4, "history rollups: per-sensor min/max/sum/count at 1 minute, 1 hour, 1 day (core/rollups.py)", """
CREATE TABLE rollup_1m (
    sensor_id INTEGER NOT NULL,
    start INTEGER NOT NULL,      -- UTC epoch seconds, a multiple of 60
    min_value REAL NOT NULL,
    max_value REAL NOT NULL,
    sum_value REAL NOT NULL,     -- the mean is sum_value / count
    count INTEGER NOT NULL,
    first_ts REAL NOT NULL,
    last_ts REAL NOT NULL,
    PRIMARY KEY (sensor_id, start)
) WITHOUT ROWID;
CREATE TABLE rollup_1h (
    sensor_id INTEGER NOT NULL, start INTEGER NOT NULL, min_value REAL NOT NULL, max_value REAL NOT NULL,
    sum_value REAL NOT NULL, count INTEGER NOT NULL, first_ts REAL NOT NULL, last_ts REAL NOT NULL,
    PRIMARY KEY (sensor_id, start)
) WITHOUT ROWID;
CREATE TABLE rollup_1d (
    sensor_id INTEGER NOT NULL, start INTEGER NOT NULL, min_value REAL NOT NULL, max_value REAL NOT NULL,
    sum_value REAL NOT NULL, count INTEGER NOT NULL, first_ts REAL NOT NULL, last_ts REAL NOT NULL,
    PRIMARY KEY (sensor_id, start)
) WITHOUT ROWID;
-- covered_id: the newest readings.id folded into the rollups (they are used only
-- while it is the table's newest); horizon_<seconds>: retention purged that
-- resolution before this time. Existing readings are folded in by the writer.
CREATE TABLE rollup_state (name TEXT PRIMARY KEY, value REAL NOT NULL);
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
