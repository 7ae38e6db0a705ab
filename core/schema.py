"""The database schema and its versions.

The version is SQLite's `PRAGMA user_version`. `MIGRATIONS` lists every step
from an empty file to today's schema, each with its number; `upgrade()` runs the
ones a database has not had, in order, each in its own transaction, so a file
from any earlier release is brought up to date in place at start.

Before the first step runs on a database that holds anything, a copy of it as
it was is made next to it with SQLite's online backup API
(`smartanom.db.schema-v0-20250911T153000.bak`): an upgrade that goes wrong, or a
downgrade of the hub, can then go back with `smartanom restore`. A database
written by a newer hub is refused (`SchemaTooNew`) and left untouched.

Every change to the schema is a new step here AND a test that upgrades a
database of the previous version with real rows in it (tests/schema_upgrade.py
has the helpers; docs/schema.md says how). Version numbers are reserved per
topic so that branches do not collide:
1 the first release's tables, 2 alerts, 3 calibration, 4 history rollups,
5 outputs and actuations. Add a step at the end; never edit a released one.
"""

from __future__ import annotations

import logging
import shutil
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("smartanom.schema")


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
    target_key TEXT NOT NULL DEFAULT '',  -- a digest of the whole URL: masked URLs can look alike
    attempt INTEGER NOT NULL,
    ok INTEGER NOT NULL,
    error TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS alert_notifications_alert ON alert_notifications (alert_id, ts);
"""),
    Migration(3, "calibrations, and each reading's raw value and calibration", """
CREATE TABLE IF NOT EXISTS calibrations (
    id INTEGER PRIMARY KEY,
    sensor_id INTEGER NOT NULL,
    created REAL NOT NULL,       -- UTC seconds since the epoch
    kind TEXT NOT NULL,          -- ph | ec | linear
    points TEXT NOT NULL,        -- JSON [[raw, reference], ...] as measured
    slope REAL NOT NULL,
    offset REAL NOT NULL,
    report TEXT NOT NULL DEFAULT '{}'  -- JSON: probe health as shown after calibrating
);
CREATE INDEX IF NOT EXISTS calibrations_sensor ON calibrations (sensor_id, id);
-- NULL for readings stored as they came (no calibration): old rows stay valid.
ALTER TABLE readings ADD COLUMN raw REAL;
ALTER TABLE readings ADD COLUMN calibration_id INTEGER;
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
    Migration(5, "outputs: every actuation with its reason, and every dose given", """
CREATE TABLE IF NOT EXISTS actuations (
    id INTEGER PRIMARY KEY,
    ts REAL NOT NULL,               -- UTC seconds since the epoch
    output_id TEXT NOT NULL,
    state TEXT NOT NULL,            -- 'on' | 'off'
    source TEXT NOT NULL,           -- start | schedule | rule | dose | manual | interlock | safe
    reason TEXT NOT NULL DEFAULT '',
    dry_run INTEGER NOT NULL DEFAULT 0,
    ok INTEGER NOT NULL DEFAULT 1,  -- 0: the driver failed (error says why)
    error TEXT
);
CREATE INDEX IF NOT EXISTS actuations_ts ON actuations (ts);
CREATE INDEX IF NOT EXISTS actuations_output_ts ON actuations (output_id, ts);
-- Written before the pump starts, so a crash mid-dose counts the dose as given:
-- a restart never repeats it, and the hour/day limits hold across restarts.
CREATE TABLE IF NOT EXISTS doses (
    id INTEGER PRIMARY KEY,
    ts REAL NOT NULL,
    controller_id TEXT NOT NULL,
    output_id TEXT NOT NULL,
    ml REAL NOT NULL,
    seconds REAL NOT NULL,
    dry_run INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS doses_controller_ts ON doses (controller_id, ts);
"""),
]

LATEST = max(m.version for m in MIGRATIONS)


class SchemaTooNew(Exception):
    """The database was written by a newer release of the hub."""


def version(conn: sqlite3.Connection) -> int:
    return conn.execute("PRAGMA user_version").fetchone()[0]


def too_new_message(path: str | Path, found: int) -> str:
    return (
        f"the database {path} has schema version {found}, written by a newer SmarTanom Hub; "
        f"this one knows versions up to {LATEST}. Install the newer hub again, or restore a backup "
        "made by this release (smartanom restore BACKUP); the database was not changed"
    )


def check(conn: sqlite3.Connection) -> int:
    """The database's version; raises SchemaTooNew if this hub cannot use it."""
    current = version(conn)
    if current > LATEST:
        raise SchemaTooNew(too_new_message(_file_of(conn) or ":memory:", current))
    return current


def upgrade(conn: sqlite3.Connection) -> list[Migration]:
    """Bring the database to LATEST; returns the steps that ran.

    The first release set no version (0) and its statements are all
    `IF NOT EXISTS`, so a database it made takes step 1 harmlessly. A database
    with tables in it is copied aside first (`backup_before_upgrade`).
    """
    current = check(conn)
    steps = [m for m in sorted(MIGRATIONS, key=lambda m: m.version) if m.version > current]
    if steps and _has_tables(conn):
        copy = backup_before_upgrade(conn, current)
        if copy is not None:
            log.warning(
                "Upgrading the database %s from schema version %d to %d; its previous state is kept in %s",
                _file_of(conn), current, LATEST, copy,
            )
    done = []
    for step in steps:
        # executescript commits first and runs statements outside a transaction
        # of ours, so wrap each step (and its version bump) in one explicitly.
        try:
            conn.executescript(f"BEGIN;\n{step.sql}\nPRAGMA user_version = {step.version};\nCOMMIT;")
        except BaseException:
            if conn.in_transaction:
                conn.rollback()
            raise
        log.info("Schema version %d: %s", step.version, step.description)
        done.append(step)
    return done


def backup_before_upgrade(conn: sqlite3.Connection, current: int) -> Path | None:
    """Copy the database aside before its schema changes; None for an in-memory one.

    A copy that cannot be made stops the upgrade (sqlite3.OperationalError):
    the hub then reports storage as failing rather than change data it could not save.
    """
    from smartanom.backup import copy_database  # backup.py imports this module

    path = _file_of(conn)
    if not path:
        return None
    dest = Path(f"{path}.schema-v{current}-{time.strftime('%Y%m%dT%H%M%S')}.bak")
    # Storage retries a failed open every flush interval: refuse at once rather than
    # write most of a copy to a card that cannot hold it, again and again.
    size = Path(path).stat().st_size + _wal_size(path)
    free = shutil.disk_usage(dest.parent).free
    if free < size + size // 10:
        raise sqlite3.OperationalError(
            f"cannot upgrade {path}: a copy of it is kept first, and that needs {size / 1e6:.0f} MB "
            f"where {free / 1e6:.0f} MB are free; free some space and the hub goes on by itself"
        )
    log.info("Keeping a copy of %s (%.0f MB) before upgrading its schema from version %d", path, size / 1e6, current)
    try:
        copy_database(conn, dest)
    except (sqlite3.Error, OSError) as exc:
        raise sqlite3.OperationalError(f"cannot keep a copy of {path} before upgrading its schema (to {dest}): {exc}") from exc
    return dest


def _wal_size(path: str) -> int:
    try:
        return Path(f"{path}-wal").stat().st_size
    except OSError:
        return 0


def _has_tables(conn: sqlite3.Connection) -> bool:
    return conn.execute("SELECT count(*) FROM sqlite_master WHERE type = 'table'").fetchone()[0] > 0


def _file_of(conn: sqlite3.Connection) -> str:
    """The main database's file name ('' for an in-memory database)."""
    for _, name, file in conn.execute("PRAGMA database_list"):
        if name == "main":
            return file or ""
    return ""


def check_file(path: str | Path) -> str | None:
    """For check-config: why the hub could not use the database at `path`, or None.

    Read-only; a missing file is fine (the hub creates it), and an unreadable
    one is left for the start-up to report with the rest of storage's troubles.
    """
    path = Path(path)
    if not path.is_file():
        return None
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    except sqlite3.Error:
        return None
    try:
        found = version(conn)
    except sqlite3.Error:
        return None
    finally:
        conn.close()
    return too_new_message(path, found) if found > LATEST else None
