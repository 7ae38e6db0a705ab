"""Alerts in SQLite (schema migration 2): alerts, their history, every notification attempt.

One thread with its own connection does all of it, in order: the event loop
hands writes over and goes on (`submit`), and awaits reads (`call`). Ids are
given out on the loop (`next_id`), so a transition is broadcast at once and
written a moment later. At start the active alerts come back with the notices
already delivered for them, which is how a restarted hub knows not to send
them again.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable

from smartanom import schema
from smartanom.alerts.model import RESOLVED, Alert
from smartanom.storage import open_database

log = logging.getLogger("smartanom.alerts")

_COLUMNS = ("id", "key", "kind", "device_id", "sensor_id", "severity", "state", "value", "threshold", "trigger",
            "message", "recommendation", "started_at", "acknowledged_at", "acknowledged_by", "resolved_at")


class AlertStore:
    def __init__(self, path: str | Path):
        self.path = path
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="smartanom-alerts-db")
        self._conn: sqlite3.Connection | None = None
        self._last_id = 0
        self.error: str | None = None

    # --- on the loop --------------------------------------------------------------------

    async def open(self, owed_since: float) -> tuple[list[Alert], list[Alert]]:
        """Connect; return the alerts that were active when the hub last stopped, and those
        resolved since `owed_since` (the notifier sends resolved notices still owed).

        A database that cannot be opened (core/storage.py reports it loudly) does not stop
        alerting: it runs in memory, and writes are tried again as alerts change.
        """
        try:
            return await self.call(self._open, owed_since)
        except Exception as exc:
            self.error = f"{type(exc).__name__}: {exc}"
            # Ids must not collide with the stored alerts we could not read: start far above them.
            self._last_id = int(time.time())
            log.error("Could not read alerts from %s (%s): alerting goes on in memory", self.path, self.error)
            return [], []

    def next_id(self) -> int:
        self._last_id += 1
        return self._last_id

    def submit(self, fn: Callable, *args) -> None:
        """Run a write on the store's thread; a failure is logged, never raised here."""
        try:
            self._pool.submit(self._guarded, fn, *args)
        except RuntimeError:  # closed: the hub is stopping and something still changed an alert
            log.warning("Alert store closed; not recorded: %s%s", getattr(fn, "__name__", fn), args[:2])

    async def call(self, fn: Callable[..., Any], *args) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._pool, self._with_conn, fn, *args)

    def close(self) -> None:
        """Finish queued writes and close (blocks: call off the loop)."""
        self._pool.submit(self._close).result()
        self._pool.shutdown(wait=True)

    # --- on the store's thread ------------------------------------------------------------

    def _with_conn(self, fn, *args):
        if self._conn is None:
            self._conn = open_database(self.path)
        return fn(self._conn, *args)

    def _guarded(self, fn, *args) -> None:
        try:
            self._with_conn(fn, *args)
            self.error = None
        except Exception as exc:  # a full disk must not end alerting: it still runs in memory
            self.error = f"{type(exc).__name__}: {exc}"
            log.error("Could not write alerts to %s: %s", self.path, self.error)

    def _open(self, conn: sqlite3.Connection, owed_since: float) -> tuple[list[Alert], list[Alert]]:
        if conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'alerts'").fetchone() is None:
            # A database that reached a later schema version before step 2 was merged
            # (a development build): its statements are all IF NOT EXISTS, so run it now.
            step = next(m for m in schema.MIGRATIONS if m.version == 2)
            conn.executescript(f"BEGIN;\n{step.sql}\nCOMMIT;")
            log.warning("Added the alert tables (schema step 2) to %s, which had a later version without them", self.path)
        self._last_id = conn.execute("SELECT COALESCE(MAX(id), 0) FROM alerts").fetchone()[0]
        active = _alerts(conn, "state != ? ORDER BY id", (RESOLVED,), delivered=True)
        return active, _alerts(conn, "state = ? AND resolved_at >= ?", (RESOLVED, owed_since), delivered=True)

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


# Functions run on the store's thread (through submit/call) ------------------------------

def save(conn: sqlite3.Connection, event: str, alert: Alert, ts: float) -> None:
    values = [getattr(alert, c) for c in _COLUMNS]
    with conn:
        conn.execute(
            f"INSERT INTO alerts ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))}) "
            f"ON CONFLICT(id) DO UPDATE SET {', '.join(f'{c} = excluded.{c}' for c in _COLUMNS[1:])}",
            values,
        )
        conn.execute(
            "INSERT INTO alert_events (alert_id, ts, event, severity, value) VALUES (?, ?, ?, ?, ?)",
            (alert.id, ts, event, alert.severity, alert.value),
        )


def record_attempt(
    conn: sqlite3.Connection, alert_id: int, ts: float, notice: str, target: str, target_key: str, attempt: int, ok: bool, error: str,
) -> None:
    with conn:
        conn.execute(
            "INSERT INTO alert_notifications (alert_id, ts, notice, target, target_key, attempt, ok, error) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (alert_id, ts, notice, target, target_key, attempt, int(ok), error),
        )


def listing(conn: sqlite3.Connection, states: tuple[str, ...], limit: int) -> list[dict]:
    """Alerts in `states`, newest first, each with its notification attempts and events."""
    marks = ", ".join("?" * len(states))
    alerts = _alerts(conn, f"state IN ({marks}) ORDER BY started_at DESC, id DESC LIMIT ?", (*states, limit))
    return [dict(a.as_json(), notifications=attempts(conn, a.id)) for a in alerts]


def attempts(conn: sqlite3.Connection, alert_id: int) -> list[dict]:
    from smartanom.protocol import format_timestamp

    rows = conn.execute(
        "SELECT ts, notice, target, attempt, ok, error FROM alert_notifications WHERE alert_id = ? ORDER BY id", (alert_id,)
    ).fetchall()
    return [
        {"at": format_timestamp(ts), "notice": notice, "target": target, "attempt": attempt, "ok": bool(ok), "error": error}
        for ts, notice, target, attempt, ok, error in rows
    ]


def _alerts(conn: sqlite3.Connection, where: str, params: tuple, delivered: bool = False) -> list[Alert]:
    """Alerts matching `where`; with `delivered`, each knows which notices reached whom."""
    rows = conn.execute(f"SELECT {', '.join(_COLUMNS)} FROM alerts WHERE {where}", params).fetchall()
    alerts = [Alert(**dict(zip(_COLUMNS, row))) for row in rows]
    if delivered:
        for alert in alerts:
            alert.delivered = _delivered(conn, alert.id)
    return alerts


def _delivered(conn: sqlite3.Connection, alert_id: int) -> dict[str, float]:
    rows = conn.execute(
        "SELECT notice, target_key, MAX(ts) FROM alert_notifications WHERE alert_id = ? AND ok = 1 GROUP BY notice, target_key", (alert_id,)
    ).fetchall()
    return {f"{notice}:{key}": ts for notice, key, ts in rows}
