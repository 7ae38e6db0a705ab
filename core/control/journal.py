"""The control loop's own record in SQLite: actuations and doses (schema step 5).

Readings go through the storage writer thread in batches; these rows do not.
They are few (a handful an hour) and the dose row must be durable before the
pump starts, so each is written at once, on the loop, with its own connection:
one small insert in WAL mode takes well under a millisecond.
"""

from __future__ import annotations

import logging
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from smartanom import schema
from smartanom.storage import connect

log = logging.getLogger("smartanom.control.journal")


@dataclass(frozen=True)
class Dose:
    ts: float
    controller_id: str
    output_id: str
    ml: float
    seconds: float


class Journal:
    def __init__(self, path: str | Path):
        self.path = str(path)
        self._conn: sqlite3.Connection | None = None
        # What could not be written (disk full): counted, and logged once per failure streak.
        self.failed_writes = 0

    def open(self) -> bool:
        """Connect; on failure (read-only, disk full) log it and try again at the next use.
        Until then nothing is recorded, and dosing holds (no record, no dose)."""
        try:
            if self.path != ":memory:":
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            conn = connect(self.path)
            try:
                schema.upgrade(conn)
            except BaseException:
                conn.close()
                raise
        except (sqlite3.Error, OSError) as exc:
            log.error("Control journal %s cannot be opened (%s): actuations are only logged and dosing holds until it can", self.path, exc)
            return False
        self._conn = conn
        return True

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None and not self.open():
            raise sqlite3.OperationalError("the control journal cannot be opened")
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def record_actuation(self, ts: float, output_id: str, on: bool, source: str, reason: str, dry_run: bool, ok: bool, error: str | None) -> None:
        self._write(
            "INSERT INTO actuations (ts, output_id, state, source, reason, dry_run, ok, error) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (ts, output_id, "on" if on else "off", source, reason, int(dry_run), int(ok), error),
        )

    def record_dose(self, dose: Dose, dry_run: bool) -> bool:
        """False if the dose could not be recorded: then it must not be given."""
        return self._write(
            "INSERT INTO doses (ts, controller_id, output_id, ml, seconds, dry_run) VALUES (?, ?, ?, ?, ?, ?)",
            (dose.ts, dose.controller_id, dose.output_id, dose.ml, dose.seconds, int(dry_run)),
        )

    def ml_since(self, controller_id: str, since: float) -> float:
        row = self._read("SELECT COALESCE(SUM(ml), 0) FROM doses WHERE controller_id = ? AND ts >= ? AND dry_run = 0", (controller_id, since))
        return row[0][0] if row else 0.0

    def last_dose(self, controller_id: str) -> Dose | None:
        rows = self._read("SELECT ts, controller_id, output_id, ml, seconds FROM doses WHERE controller_id = ? ORDER BY ts DESC LIMIT 1", (controller_id,))
        return Dose(*rows[0]) if rows else None

    def doses(self, controller_id: str | None = None, since: float = 0.0) -> list[Dose]:
        where, args = "ts >= ?", [since]
        if controller_id is not None:
            where += " AND controller_id = ?"
            args.append(controller_id)
        rows = self._read(f"SELECT ts, controller_id, output_id, ml, seconds FROM doses WHERE {where} ORDER BY ts", tuple(args))
        return [Dose(*r) for r in rows]

    def actuations(self, limit: int = 100, output_id: str | None = None, before: float | None = None) -> list[dict]:
        where, args = ["1"], []
        if output_id is not None:
            where.append("output_id = ?")
            args.append(output_id)
        if before is not None:
            where.append("ts < ?")
            args.append(before)
        rows = self._read(
            f"SELECT ts, output_id, state, source, reason, dry_run, ok, error FROM actuations WHERE {' AND '.join(where)} ORDER BY ts DESC, id DESC LIMIT ?",
            (*args, limit),
        )
        keys = ("ts", "output_id", "state", "source", "reason", "dry_run", "ok", "error")
        return [dict(zip(keys, r), dry_run=bool(r[5]), ok=bool(r[6])) for r in rows]

    def _write(self, sql: str, args: tuple) -> bool:
        try:
            conn = self._connection()
            with conn:
                conn.execute(sql, args)
        except sqlite3.Error as exc:
            self.failed_writes += 1
            log.error("Control journal %s: cannot write (%s); %d records lost so far", self.path, exc, self.failed_writes)
            return False
        return True

    def _read(self, sql: str, args: tuple) -> list:
        try:
            return self._connection().execute(sql, args).fetchall()
        except sqlite3.Error as exc:
            log.error("Control journal %s: cannot read (%s)", self.path, exc)
            raise
