"""Storing every accepted reading and status change in SQLite.

The bus listener only appends to an in-memory queue (a deque: thread-safe
appends and pops, nothing to wait on); a writer thread drains it in batches at
least every `flush_interval` seconds, in WAL mode. So the event loop never
waits on the disk, a clean shutdown flushes everything, and a crash loses at
most what arrived in the last flush interval.
"""

from __future__ import annotations

import collections
import logging
import os
import sqlite3
import threading
import time
from pathlib import Path

from core.bus import EventBus
from core.events import DeviceStatusChanged, SensorReading

log = logging.getLogger("smartanom.storage")

SCHEMA = """
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

# Beyond this many unwritten readings (the disk has stalled for a long time)
# new ones are counted as dropped rather than exhausting memory.
MAX_PENDING = 1_000_000


def connect(path: str | Path) -> sqlite3.Connection:
    conn = sqlite3.connect(str(path), check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    # NORMAL in WAL mode cannot corrupt the database on a crash; it may only
    # lose the last transactions, which the flush interval bounds anyway.
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA busy_timeout=5000")
    return conn


class Storage:
    def __init__(self, path: str | Path, flush_interval: float = 0.5):
        self.path = Path(path)
        self.flush_interval = flush_interval
        self.accepted = 0
        self.stored = 0
        self.dropped = 0
        self._readings: collections.deque = collections.deque()
        self._statuses: collections.deque = collections.deque()
        self._wake = threading.Event()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._unsubscribers: list = []
        self._last_error_log = 0.0

    def open(self) -> None:
        """Create the file and schema (raises on an unusable path) and start the writer."""
        if str(self.path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = connect(self.path)
        conn.executescript(SCHEMA)
        conn.close()
        self._thread = threading.Thread(target=self._run, name="smartanom-storage", daemon=True)
        self._thread.start()

    def attach(self, bus: EventBus) -> None:
        self._unsubscribers = [
            bus.subscribe(SensorReading, self._on_reading),
            bus.subscribe(DeviceStatusChanged, self._on_status),
        ]

    def _on_reading(self, reading: SensorReading) -> None:
        self.accepted += 1
        if len(self._readings) >= MAX_PENDING:
            self.dropped += 1
            return
        self._readings.append((reading.sensor.id, reading.timestamp, reading.value))

    def _on_status(self, event: DeviceStatusChanged) -> None:
        self._statuses.append((event.device.id, event.timestamp, event.status.value, event.reason))

    @property
    def pending(self) -> int:
        return len(self._readings)

    def close(self) -> None:
        """Stop accepting, write everything still queued, and stop the writer. Blocking."""
        for unsubscribe in self._unsubscribers:
            unsubscribe()
        self._stopping = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        log.info("Storage closed: %d readings accepted, %d stored, %d dropped", self.accepted, self.stored, self.dropped)

    def _run(self) -> None:
        conn = connect(self.path)
        try:
            while True:
                self._wake.wait(self.flush_interval)
                self._wake.clear()
                stopping = self._stopping
                self._flush(conn)
                if stopping:
                    break
        finally:
            conn.close()

    def _flush(self, conn: sqlite3.Connection) -> None:
        readings = _drain(self._readings)
        statuses = _drain(self._statuses)
        if not readings and not statuses:
            return
        for attempt in range(3):
            try:
                with conn:
                    conn.executemany("INSERT INTO readings (sensor_id, ts, value) VALUES (?, ?, ?)", readings)
                    conn.executemany(
                        "INSERT INTO device_status (device_id, ts, status, reason) VALUES (?, ?, ?, ?)", statuses
                    )
                self.stored += len(readings)
                return
            except sqlite3.Error as exc:
                if attempt < 2 and "locked" in str(exc):
                    time.sleep(0.1 * (attempt + 1))
                    continue
                self.dropped += len(readings)
                now = time.monotonic()
                if now - self._last_error_log > 10:
                    self._last_error_log = now
                    log.error(
                        "Could not write %d readings to %s: %s (dropped so far: %d; readings are still broadcast live)",
                        len(readings), os.fspath(self.path), exc, self.dropped,
                    )
                return


def _drain(queue: collections.deque) -> list:
    out = []
    pop = queue.popleft
    try:
        for _ in range(len(queue)):
            out.append(pop())
    except IndexError:
        pass
    return out
