"""Storing every accepted reading and status change in SQLite.

The bus listener only appends to an in-memory queue (a deque: thread-safe
appends and pops, nothing to wait on); a writer thread drains it in batches at
least every `flush_interval` seconds, in WAL mode. So the event loop never
waits on the disk, a clean shutdown flushes everything, and a crash loses at
most what arrived in the last flush interval.

When the database cannot be written (disk full, read-only) the failure is
logged loudly, readings wait in memory and the writer retries every flush
interval. Nothing accepted is dropped: before memory holds `max_pending`
readings, new ones are refused (`refusing`: WebSocket clients get OVERLOADED,
plugins a False from publish_reading), and a stop that still cannot write saves
what it holds to a recovery file that the next start imports (core/recovery.py).
The writer thread also runs the retention purge (`keep_days`), so it never stalls the loop.

In the transaction that inserts a batch, the writer also folds it into the
per-minute, hour and day rollups (core/rollups.py) that history queries read,
and it catches up on readings the rollups lack (a database from before them)
a chunk at a time between flushes.
"""

from __future__ import annotations

import collections
import logging
import os
import sqlite3
import threading
import time
from pathlib import Path

from smartanom.bus import EventBus
from smartanom.events import DeviceStatusChanged, SensorReading
from smartanom import rollups, schema
from smartanom.recovery import RecoveryFile
from smartanom.rollups import RollupsConfig
from smartanom.throttle import LogThrottle

log = logging.getLogger("smartanom.storage")


# Rows deleted per transaction by the retention purge: short transactions, so
# the writer goes on flushing readings between them.
PURGE_CHUNK = 5000
# Readings (ids) folded into the rollups per catch-up transaction: a fraction
# of a second of work, so live batches keep their turn.
CATCH_UP_CHUNK = 50_000
# New readings are refused once this share of max_pending is held, which leaves
# room for readings already on their way (from plugin threads) to be kept.
REFUSE_AT = 0.9
# The writer is woken before its flush interval is up once this share is held,
# so a healthy database never comes near refusing (a long flush_interval at a high rate).
WAKE_AT = 0.25


def connect(path: str | Path) -> sqlite3.Connection:
    conn = sqlite3.connect(str(path), check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    # NORMAL in WAL mode cannot corrupt the database on a crash; it may only
    # lose the last transactions, which the flush interval bounds anyway.
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA busy_timeout=5000")
    return conn


def open_database(path: str | Path) -> sqlite3.Connection:
    """A connection with the schema brought up to date (core/schema.py)."""
    conn = connect(path)
    try:
        schema.upgrade(conn)
    except BaseException:
        conn.close()
        raise
    return conn


class Storage:
    def __init__(
        self,
        path: str | Path,
        flush_interval: float = 0.5,
        *,
        max_pending: int = 100_000,
        keep_days: float | None = None,
        purge_interval: float = 3600.0,
        recovery_path: str | Path | None = None,
        rollups: RollupsConfig | None = None,
    ):
        self.path = Path(path)
        self.flush_interval = flush_interval
        self.max_pending = max_pending
        # Readings held at which `backlogged` turns true (new readings refused).
        self.backlog_at = int(max_pending * REFUSE_AT)
        self._wake_at = max(1, int(max_pending * WAKE_AT))
        self.keep_days = keep_days
        self.purge_interval = purge_interval
        self.rollups = rollups or RollupsConfig()
        self._rollups_behind = self.rollups.enabled  # until a catch-up finds them complete
        self.accepted = 0
        self.stored = 0
        self.dropped = 0
        self.purged = 0
        self.imported = 0  # readings read back from the recovery file at open
        self.saved = 0  # readings saved to the recovery file at close
        memory = str(self.path) == ":memory:"
        self.recovery = None if memory else RecoveryFile(recovery_path or f"{os.fspath(self.path)}.recovery", max_pending)
        self._recovery_unwritten = False  # recovered readings not yet in the database
        # None while the database is writable; the last error text otherwise.
        self.error: str | None = None
        self._readings: collections.deque = collections.deque()
        self._statuses: collections.deque = collections.deque()
        self._held: list = []  # readings a failed write left behind (writer thread only)
        self._caught_up = time.monotonic()  # when the writer last had nothing left to write
        self._wake = threading.Event()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._unsubscribers: list = []
        self._error_log = LogThrottle()  # a failing disk is reported once a minute
        self._next_purge = 0.0

    def open(self) -> None:
        """Create the file and schema, and start the writer.

        An unusable path (read-only, missing permission, full disk) is reported
        and does not stop the hub: readings are still broadcast, held in memory
        up to `max_pending`, and written once the database can be written.
        Readings a previous stop saved to the recovery file are written first.
        """
        self._open_recovery()
        try:
            conn = self._connect()
            conn.close()
        except (sqlite3.Error, OSError) as exc:
            self._failed(exc, "open")
        self._thread = threading.Thread(target=self._run, name="smartanom-storage", daemon=True)
        self._thread.start()

    def _open_recovery(self) -> None:
        if self.recovery is None:
            return
        try:
            found = self.recovery.load()
        except OSError as exc:
            log.error("Cannot read the recovery file %s: %s", os.fspath(self.recovery.path), exc)
            found = []
        if found:
            self._held = found[: self.max_pending]
            self.imported = len(self._held)
            self._recovery_unwritten = True
            log.warning("Importing %d readings that the last stop could not write, from %s", self.imported, os.fspath(self.recovery.path))
        try:
            self.recovery.reserve()
        except OSError as exc:
            log.warning(
                "Cannot reserve %d bytes for the recovery file %s (%s): a stop on a full disk may lose "
                "the readings held in memory; set storage.recovery_path to another file system",
                self.recovery.size, os.fspath(self.recovery.path), exc,
            )

    def _connect(self) -> sqlite3.Connection:
        if str(self.path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        return open_database(self.path)

    def attach(self, bus: EventBus) -> None:
        self._unsubscribers = [
            bus.subscribe(SensorReading, self._on_reading),
            bus.subscribe(DeviceStatusChanged, self._on_status),
        ]

    def _on_reading(self, reading: SensorReading) -> None:
        self.accepted += 1
        held = len(self._readings) + len(self._held)
        if held >= self.max_pending:
            # Only a publisher that ignored `refusing` gets here; counted, and health turns degraded.
            self.dropped += 1
            return
        self._readings.append((reading.sensor.id, reading.timestamp, reading.value, reading.raw, reading.calibration_id))
        if held + 1 == self._wake_at:
            self._wake.set()

    def _on_status(self, event: DeviceStatusChanged) -> None:
        self._statuses.append((event.device.id, event.timestamp, event.status.value, event.reason))

    @property
    def pending(self) -> int:
        """Readings accepted and not yet written (nor dropped)."""
        return len(self._readings) + len(self._held)

    @property
    def backlogged(self) -> bool:
        """Memory holds nearly `max_pending` unwritten readings: refuse new ones.

        The database has fallen behind or cannot be written. Publishers are
        refused before their reading is accepted (WebSocket clients get
        OVERLOADED and may send again; plugins get False from publish_reading),
        so that neither overload nor a failing disk costs an accepted reading.
        """
        return len(self._readings) + len(self._held) >= self.backlog_at

    @property
    def lag(self) -> float:
        """Seconds since the writer last had nothing left to write (0 when it has not fallen behind)."""
        if not self.pending:
            return 0.0
        return max(0.0, time.monotonic() - self._caught_up)

    def close(self) -> None:
        """Stop accepting, write everything still queued, and stop the writer. Blocking."""
        for unsubscribe in self._unsubscribers:
            unsubscribe()
        self._stopping = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self.pending:
            self._save_for_next_start(self._held + _drain(self._readings))
            self._held = []
        log.info(
            "Storage closed: %d readings accepted, %d stored, %d dropped, %d saved for the next start, %d imported",
            self.accepted, self.stored, self.dropped, self.saved, self.imported,
        )

    def _save_for_next_start(self, readings: list) -> None:
        where = os.fspath(self.recovery.path) if self.recovery is not None else None
        if where is not None:
            try:
                self.recovery.save(readings)
            except OSError as exc:
                log.error("Cannot save to the recovery file %s: %s", where, exc)
            else:
                self.saved = len(readings)
                log.warning(
                    "Storage closed with %d readings that could not be written to %s: saved to %s, "
                    "imported at the next start", len(readings), os.fspath(self.path), where,
                )
                return
        self.dropped += len(readings)
        log.error("Storage closed with %d readings that could not be written to %s: they are lost", len(readings), os.fspath(self.path))

    def _run(self) -> None:
        conn: sqlite3.Connection | None = None
        try:
            while True:
                self._wake.wait(self.flush_interval)
                self._wake.clear()
                stopping = self._stopping
                try:
                    if conn is None:
                        conn = self._reconnect()
                    if conn is not None and not self._flush(conn):
                        conn.close()  # a failed connection may stay broken; start afresh next time
                        conn = None
                    if conn is not None and self._rollups_behind and not stopping:
                        self._catch_up(conn)
                    if conn is not None and not stopping:
                        self._purge_if_due(conn)
                except Exception:
                    # A bug must not silently kill the only writer while readings pile up.
                    log.exception("Storage writer hit an unexpected error; retrying with a fresh connection")
                    if conn is not None:
                        conn.close()
                        conn = None
                if stopping:
                    break
        finally:
            if conn is not None:
                conn.close()

    def _reconnect(self) -> sqlite3.Connection | None:
        try:
            return self._connect()
        except (sqlite3.Error, OSError) as exc:
            # Nothing can be written: hold what arrived, within max_pending.
            self._held = self._trim(self._held + _drain(self._readings))
            self._statuses.clear()
            self._failed(exc, "open")
            return None

    def _flush(self, conn: sqlite3.Connection) -> bool:
        """Write what is queued (and what an earlier failure left). False if the write failed."""
        # The batch stays in _held while it is written, so `pending` counts it.
        readings = self._held = self._held + _drain(self._readings)
        statuses = _drain(self._statuses)
        if not readings and not statuses:
            self._caught_up = time.monotonic()
            if self.error is not None:  # the connection opened again, with nothing to write yet
                log.warning("Storage %s can be opened again", os.fspath(self.path))
                self.error = None
            return True
        for attempt in range(3):
            try:
                with conn:
                    before = rollups.last_id(conn)
                    conn.executemany("INSERT INTO readings (sensor_id, ts, value, raw, calibration_id) VALUES (?, ?, ?, ?, ?)", readings)
                    if self.rollups.enabled and not rollups.fold_new(conn, before):
                        self._rollups_behind = True
                    conn.executemany(
                        "INSERT INTO device_status (device_id, ts, status, reason) VALUES (?, ?, ?, ?)", statuses
                    )
            except sqlite3.Error as exc:
                if attempt < 2 and "locked" in str(exc):
                    time.sleep(0.1 * (attempt + 1))
                    continue
                self._held = self._trim(readings)
                self._failed(exc, "write")
                return False
            self.stored += len(readings)
            self._held = []
            if self._recovery_unwritten:
                self._recovery_unwritten = False
                self._clear_recovery()
            if not self._readings:
                self._caught_up = time.monotonic()
            if self.error is not None:
                log.warning("Storage %s is writable again: %d readings written", os.fspath(self.path), len(readings))
                self.error = None
            return True
        return False

    def _trim(self, held: list) -> list:
        """Unwritten readings to keep for the next attempt, within max_pending.

        Like `_on_reading`, it keeps the oldest: the record stays gap-free up to the
        moment memory ran out, and the gap is counted in `dropped`.
        """
        excess = len(held) + len(self._readings) - self.max_pending
        if excess > 0:
            self.dropped += excess
            held = held[: len(held) - excess]
        return held

    def _failed(self, exc: Exception, action: str) -> None:
        first = self.error is None
        self.error = f"cannot {action} {os.fspath(self.path)}: {exc}"
        if first:
            self._error_log.reset()  # a new failure after a recovery is reported at once
        if self._error_log.allow():
            log.error(
                "STORAGE FAILING: %s. Readings are still broadcast live and held in memory "
                "(%d now; new ones are refused from %d on, storage.max_pending); %d dropped so far. "
                "Free disk space or fix the permissions; writing resumes by itself.",
                self.error, self.pending, self.backlog_at, self.dropped,
            )

    def _catch_up(self, conn: sqlite3.Connection) -> None:
        try:
            done, newest = rollups.catch_up(conn, CATCH_UP_CHUNK)
        except sqlite3.Error as exc:
            log.error("Folding older readings into the rollups of %s failed: %s; retrying", os.fspath(self.path), exc)
            return
        self._rollups_behind = done < newest
        if self._rollups_behind:
            self._wake.set()  # more to do: go on after the next flush, without waiting
        elif done:
            log.info("Rollups of %s are complete (up to reading id %d)", os.fspath(self.path), done)

    def _purge_if_due(self, conn: sqlite3.Connection) -> None:
        now = time.monotonic()
        if now < self._next_purge:
            return
        self._next_purge = now + self.purge_interval
        self._purge_rollups(conn)
        if self.keep_days is None:
            return
        cutoff = time.time() - self.keep_days * 86400
        deleted = 0
        try:
            for table in ("readings", "device_status"):
                while True:
                    with conn:
                        cursor = conn.execute(
                            f"DELETE FROM {table} WHERE id IN (SELECT id FROM {table} WHERE ts < ? LIMIT {PURGE_CHUNK})",
                            (cutoff,),
                        )
                    deleted += cursor.rowcount
                    self.purged += cursor.rowcount
                    if cursor.rowcount < PURGE_CHUNK:
                        break
                    # Keep live readings flowing to disk during a long purge.
                    if not self._flush(conn):
                        return
        except sqlite3.Error as exc:
            log.error("Retention purge of %s failed: %s; retrying in %g s", os.fspath(self.path), exc, self.purge_interval)
            return
        if deleted:
            log.info("Retention: deleted %d rows older than %g days from %s", deleted, self.keep_days, os.fspath(self.path))

    def _purge_rollups(self, conn: sqlite3.Connection) -> None:
        """Retention per rollup resolution, in chunks with flushes between them."""
        for width, keep_days in self.rollups.keep_days().items():
            if keep_days is None:
                continue
            deleted = 0
            try:
                for chunk in rollups.purge(conn, width, time.time() - keep_days * 86400, PURGE_CHUNK):
                    deleted += chunk
                    if chunk and not self._flush(conn):
                        return
            except sqlite3.Error as exc:
                log.error("Retention purge of %s rollups in %s failed: %s", rollups.table(width), os.fspath(self.path), exc)
                return
            if deleted:
                log.info("Retention: deleted %d %s rows older than %g days from %s", deleted, rollups.table(width), keep_days, os.fspath(self.path))

    def _clear_recovery(self) -> None:
        try:
            self.recovery.clear()
        except OSError as exc:
            # Its readings are in the database now; importing them again would duplicate them.
            log.error("Cannot empty the recovery file %s (%s): remove it before the next start", os.fspath(self.recovery.path), exc)
        else:
            log.info("Imported %d readings from %s", self.imported, os.fspath(self.recovery.path))


def _drain(queue: collections.deque) -> list:
    out = []
    pop = queue.popleft
    try:
        for _ in range(len(queue)):
            out.append(pop())
    except IndexError:
        pass
    return out
