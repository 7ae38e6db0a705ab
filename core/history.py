"""Reading stored history back: raw readings, per-bucket min/mean/max, the latest value.

Storage (core/storage.py) writes the `readings` table from its own thread in WAL
mode, so readers here use their own connections and never wait for the writer.
Queries run on a small thread pool (`History.run`), never on the event loop: a
week of 1 Hz readings is a few hundred thousand rows to aggregate. Downsampling
is done by SQLite (GROUP BY), so only the buckets cross into Python.

The query functions take a connection and a `Query`, which keeps them easy to
test and to time without a server.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Callable, NamedTuple, TypeVar

from smartanom import rollups

T = TypeVar("T")

# Bucket widths offered to clients, in seconds.
BUCKETS = {"1m": 60, "5m": 300, "1h": 3600, "1d": 86400}


@dataclass(frozen=True)
class Query:
    """Which readings of one sensor, in which order, how many.

    `since` is inclusive and `until` exclusive (epoch seconds, None = open).
    `cursor` continues a previous page: for raw readings the (ts, id) of the
    last row returned, for buckets the start of the last bucket returned.
    """

    sensor_id: int
    since: float | None = None
    until: float | None = None
    limit: int = 1000
    newest_first: bool = True
    bucket: int | None = None  # seconds; None = raw readings
    cursor: tuple[float, int] | float | None = None
    calibration: bool = False  # raw readings: also each one's raw value and calibration id


# Rows are NamedTuples: a dashboard's answer holds thousands, and a frozen
# dataclass takes twice as long to build (2.4 against 1.25 us here).
class Reading(NamedTuple):
    id: int
    ts: float
    value: float
    raw: float | None = None
    calibration_id: int | None = None


class Bucket(NamedTuple):
    start: float  # epoch seconds, a multiple of the width
    min: float
    mean: float
    max: float
    count: int


@dataclass(frozen=True)
class Page:
    rows: list  # list[Reading] or list[Bucket]
    # Where the next page starts (pass back as Query.cursor), or None when this was the last.
    next_cursor: tuple[float, int] | float | None


def latest(conn: sqlite3.Connection, sensor_id: int) -> Reading | None:
    row = conn.execute(
        "SELECT id, ts, value FROM readings WHERE sensor_id = ? ORDER BY ts DESC, id DESC LIMIT 1", (sensor_id,)
    ).fetchone()
    return Reading(*row) if row else None


def fetch(conn: sqlite3.Connection, query: Query) -> Page:
    """One page of readings or buckets for `query`."""
    return _buckets(conn, query) if query.bucket else _readings(conn, query)


def _bounds(query: Query) -> tuple[list[str], list]:
    where, args = ["sensor_id = ?"], [query.sensor_id]
    if query.since is not None:
        where.append("ts >= ?")
        args.append(query.since)
    if query.until is not None:
        where.append("ts < ?")
        args.append(query.until)
    return where, args


def _readings(conn: sqlite3.Connection, query: Query) -> Page:
    where, args = _bounds(query)
    if query.cursor is not None:
        ts, row_id = query.cursor
        # Readings may share a timestamp, so the id breaks ties; the plain range
        # on ts lets SQLite walk the (sensor_id, ts) index from the cursor on.
        if query.newest_first:
            where.append("ts <= ? AND (ts < ? OR id < ?)")
        else:
            where.append("ts >= ? AND (ts > ? OR id > ?)")
        args += [ts, ts, row_id]
    direction = "DESC" if query.newest_first else "ASC"
    # raw and calibration_id are off the index: read only when asked for.
    columns = "id, ts, value, raw, calibration_id" if query.calibration else "id, ts, value"
    sql = (
        f"SELECT {columns} FROM readings WHERE {' AND '.join(where)} "
        f"ORDER BY ts {direction}, id {direction} LIMIT ?"
    )
    rows = [Reading(*r) for r in conn.execute(sql, [*args, query.limit + 1])]
    more = len(rows) > query.limit
    del rows[query.limit:]
    return Page(rows, (rows[-1].ts, rows[-1].id) if more else None)


def _buckets(conn: sqlite3.Connection, query: Query) -> Page:
    width = query.bucket
    since, until = query.since, query.until
    if query.cursor is not None:
        # Buckets are unique per start time, so paging is by time.
        if query.newest_first:
            until = query.cursor if until is None else min(until, query.cursor)
        else:
            start = query.cursor + width
            since = start if since is None else max(since, start)
    # Served from the coarsest rollup that gives exact buckets of this width,
    # and raw readings for the partial periods at the edges (core/rollups.py).
    found = rollups.buckets(conn, query.sensor_id, width, since, until, query.newest_first, query.limit + 1)
    rows = [Bucket(b * width, lo, total / n, hi, n) for b, lo, total, hi, n in found]
    more = len(rows) > query.limit
    del rows[query.limit:]
    return Page(rows, float(rows[-1].start) if more else None)


class History:
    """Runs read queries on the hub's database off the event loop.

    Each pool thread keeps one connection of its own (SQLite connections are
    not shared across threads); `close()` closes them all.
    """

    def __init__(self, path: str | Path, workers: int = 2):
        self.path = Path(path)
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="smartanom-history")
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()

    def _connection(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(str(self.path), check_same_thread=False)
            conn.execute("PRAGMA query_only = ON")
            conn.execute("PRAGMA busy_timeout = 5000")
            self._local.conn = conn
            with self._lock:
                self._connections.append(conn)
        return conn

    def _call(self, fn: Callable[..., T], *args) -> T:
        return fn(self._connection(), *args)

    async def run(self, fn: Callable[..., T], *args) -> T:
        """`await history.run(fetch, query)`: call `fn(connection, *args)` on the pool."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, partial(self._call, fn, *args))

    def close(self) -> None:
        self._executor.shutdown(wait=True)
        with self._lock:
            for conn in self._connections:
                conn.close()
            self._connections.clear()
