"""Per-sensor aggregates of readings at 1 minute, 1 hour and 1 day ("rollups").

Where it sits in the flow of a reading: the storage writer (core/storage.py)
inserts a batch of readings and, in the same transaction, folds it into the
three rollup tables (`fold_new`); history queries (core/history.py) answer a
bucket query from the coarsest rollup that serves it exactly and read raw
readings only for the partial periods at its edges (`buckets`). A week of one
sensor in hourly buckets is then 168 rows instead of 302,400 readings.

Rollups are trusted only while they are complete: `rollup_state.covered_id` is
the highest `readings.id` folded in. Rows written by anything else (an import,
a release before rollups, a test inserting directly) leave it behind the
table's newest id; queries then read raw readings, exactly as before rollups,
until the writer has caught up (`catch_up`, in chunks, also run by
`smartanom rollups rebuild` with a progress bar).

Each rollup keeps min, max, sum and count (the mean is sum / count) and the
first and last timestamp of its readings. Retention per resolution deletes old
rollup rows and records the horizon before which a resolution has no rows, so a
query never reads a partly purged range of it (`purge`).
"""

from __future__ import annotations

import sqlite3
from typing import Iterable

from pydantic import BaseModel, ConfigDict, Field

# Resolution name -> width in seconds; table rollup_<name>.
RESOLUTIONS = {"1m": 60, "1h": 3600, "1d": 86400}
_COARSE_FIRST = sorted(RESOLUTIONS.values(), reverse=True)


def table(width: int) -> str:
    return "rollup_" + {v: k for k, v in RESOLUTIONS.items()}[width]


class RollupsConfig(BaseModel):
    """`storage.rollups` in the config file."""

    model_config = ConfigDict(extra="forbid", strict=True)

    # Off: the writer keeps no rollups and queries read raw readings (slower, same answers).
    enabled: bool = True
    # Days each resolution is kept (null keeps it forever). Raw readings: storage.keep_days.
    keep_days_1m: float | None = Field(365.0, gt=0)
    keep_days_1h: float | None = Field(None, gt=0)
    keep_days_1d: float | None = Field(None, gt=0)

    def keep_days(self) -> dict[int, float | None]:
        return {60: self.keep_days_1m, 3600: self.keep_days_1h, 86400: self.keep_days_1d}


def floor_div(expr: str, width: int) -> str:
    """SQL for the exact floor(expr / width).

    CAST truncates toward zero, and `ts / width` rounds: within an ulp below a
    bucket edge it can round up to the next whole number. Subtracting one where
    that happened (and for negative times) gives the true floor, so a reading's
    minute, hour and day always nest and agree with `ts >= edge` comparisons.
    """
    q = f"CAST({expr} / {width} AS INTEGER)"
    return f"({q} - ({q} * {width} > {expr}))"


_COLUMNS = "sensor_id, start, min_value, max_value, sum_value, count, first_ts, last_ts"

# A batch is read once: its readings are grouped per sensor and minute into a
# temporary table, and each rollup is updated from those few rows (reading the
# batch three times cost as much as inserting it).
_BATCH_TABLE = f"CREATE TEMP TABLE IF NOT EXISTS rollup_batch ({_COLUMNS})"
_BATCH_FILL = f"""
INSERT INTO temp.rollup_batch ({_COLUMNS})
SELECT sensor_id, {floor_div('ts', 60)} * 60, min(value), max(value), sum(value), count(*), min(ts), max(ts)
FROM readings WHERE id > ? AND id <= ? GROUP BY 1, 2
"""


def _merge_sql(width: int) -> str:
    return f"""
INSERT INTO {table(width)} ({_COLUMNS})
SELECT sensor_id, {floor_div('start', width)} * {width}, min(min_value), max(max_value), sum(sum_value), sum(count), min(first_ts), max(last_ts)
FROM temp.rollup_batch WHERE true GROUP BY 1, 2
ON CONFLICT (sensor_id, start) DO UPDATE SET
    min_value = min(min_value, excluded.min_value),
    max_value = max(max_value, excluded.max_value),
    sum_value = sum_value + excluded.sum_value,
    count = count + excluded.count,
    first_ts = min(first_ts, excluded.first_ts),
    last_ts = max(last_ts, excluded.last_ts)
"""


_MERGES = [_merge_sql(width) for width in _COARSE_FIRST]


def last_id(conn: sqlite3.Connection) -> int:
    return conn.execute("SELECT max(id) FROM readings").fetchone()[0] or 0


def _state(conn: sqlite3.Connection) -> dict[str, float]:
    return dict(conn.execute("SELECT name, value FROM rollup_state"))


def _set(conn: sqlite3.Connection, name: str, value: float) -> None:
    conn.execute("INSERT INTO rollup_state (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = excluded.value", (name, value))


def fold(conn: sqlite3.Connection, after_id: int, upto_id: int) -> None:
    """Add readings with after_id < id <= upto_id to every rollup (the caller holds the transaction)."""
    conn.execute(_BATCH_TABLE)
    conn.execute("DELETE FROM temp.rollup_batch")
    conn.execute(_BATCH_FILL, (after_id, upto_id))
    for sql in _MERGES:
        conn.execute(sql)
    _set(conn, "covered_id", upto_id)


def fold_new(conn: sqlite3.Connection, before: int) -> bool:
    """After inserting readings (ids above `before`), fold them in if the rollups were complete.

    Called inside the writer's transaction. When they were not complete, the
    new rows are left for `catch_up`, which walks ids in order: folding them
    here too would count them twice.
    """
    if _state(conn).get("covered_id", 0) < before:
        return False
    fold(conn, before, last_id(conn))
    return True


def progress(conn: sqlite3.Connection) -> tuple[int, int]:
    """(newest reading id folded in, newest reading id)."""
    return int(_state(conn).get("covered_id", 0)), last_id(conn)


def complete(conn: sqlite3.Connection) -> bool:
    covered, newest = progress(conn)
    return covered >= newest


def catch_up(conn: sqlite3.Connection, chunk: int = 50_000) -> tuple[int, int]:
    """Fold the next `chunk` ids of readings not yet in the rollups, in one transaction.

    Returns (ids done so far, newest id): both equal when the rollups are complete.
    """
    with conn:
        conn.execute("BEGIN IMMEDIATE")  # read covered_id and fold under the same write lock as the writer
        covered, newest = int(_state(conn).get("covered_id", 0)), last_id(conn)
        if covered >= newest:
            return newest, newest
        upto = min(covered + chunk, newest)
        fold(conn, covered, upto)
        return upto, newest


def clear(conn: sqlite3.Connection) -> None:
    """Forget every rollup so that `catch_up` rebuilds them from the raw readings still kept."""
    with conn:
        for width in _COARSE_FIRST:
            conn.execute(f"DELETE FROM {table(width)}")
        conn.execute("DELETE FROM rollup_state")


def purge(conn: sqlite3.Connection, width: int, cutoff: float, chunk: int) -> Iterable[int]:
    """Delete rollup rows of one resolution that start before `cutoff`, `chunk` rows per transaction.

    Yields the rows deleted by each transaction, so the caller (the writer)
    can flush readings in between. The horizon is recorded first: from then on
    queries read this resolution only from the horizon on.
    """
    horizon = (cutoff // width) * width
    name = f"horizon_{width}"
    with conn:
        if horizon <= _state(conn).get(name, float("-inf")):
            return
        _set(conn, name, horizon)
        sensors = [row[0] for row in conn.execute(f"SELECT DISTINCT sensor_id FROM {table(width)}")]
    for sensor_id in sensors:
        while True:
            with conn:
                deleted = conn.execute(
                    f"DELETE FROM {table(width)} WHERE sensor_id = ? AND start IN "
                    f"(SELECT start FROM {table(width)} WHERE sensor_id = ? AND start < ? LIMIT {chunk})",
                    (sensor_id, sensor_id, horizon),
                ).rowcount
            yield deleted
            if deleted < chunk:
                break


# --- reading buckets back ---------------------------------------------------------------


def plan(since: float | None, until: float | None, widths: list[int], horizons: dict[int, float]) -> list[tuple[int | None, float | None, float | None]]:
    """Split [since, until) into pieces (width, lo, hi): read from that rollup, or raw for width None.

    `widths` is coarsest first; each piece of a rollup covers whole periods of
    it, and what is left at the edges goes to the next finer one, down to raw
    readings for less than a minute at each end.
    """
    if not widths:
        return [(None, since, until)]
    width, finer = widths[0], widths[1:]
    lo = horizons.get(width)  # nothing of this resolution is kept before it
    if since is not None:
        first = (since // width) * width
        first = first if first == since else first + width
        lo = first if lo is None else max(lo, first)
    hi = None if until is None else (until // width) * width
    if lo is not None and hi is not None and lo >= hi:
        return plan(since, until, finer, horizons)
    left = plan(since, lo, finer, horizons) if lo is not None and (since is None or since < lo) else []
    right = plan(hi, until, finer, horizons) if hi is not None and hi < until else []
    return left + [(width, lo, hi)] + right


def buckets(conn: sqlite3.Connection, sensor_id: int, width: int, since: float | None, until: float | None, newest_first: bool, limit: int) -> list[tuple[int, float, float, float, int]]:
    """Up to `limit` buckets (index, min, sum, max, count) of `width` seconds, in the order asked.

    Bucket index b covers [b * width, (b + 1) * width). The answer equals the
    same aggregates computed from the raw readings (the sum may differ in its
    last bits, since it is added in another order).
    """
    widths = []
    # One read transaction, so the state and the rows it describes stay consistent
    # while the writer goes on committing (WAL readers see one snapshot).
    began = not conn.in_transaction
    if began:
        conn.execute("BEGIN")
    try:
        state = _state(conn)
        if state.get("covered_id", 0) >= last_id(conn):  # complete: see the module's docstring
            widths = [w for w in _COARSE_FIRST if w <= width and width % w == 0]
        horizons = {w: state[f"horizon_{w}"] for w in widths if f"horizon_{w}" in state}
        pieces = plan(since, until, widths, horizons)
        # Pieces are contiguous in time, so their buckets come in order and only
        # the bucket at a boundary between two pieces needs merging.
        merged: list[list] = []
        for piece in reversed(pieces) if newest_first else pieces:
            for b, lo, total, hi, n in _piece(conn, sensor_id, width, piece, newest_first, limit):
                if merged and merged[-1][0] == b:
                    last = merged[-1]
                    last[1], last[2], last[3], last[4] = min(last[1], lo), last[2] + total, max(last[3], hi), last[4] + n
                else:
                    merged.append([b, lo, total, hi, n])
            if len(merged) > limit:
                break  # later pieces could only change buckets past the answer
    finally:
        if began:
            conn.execute("COMMIT")
    return merged[:limit]


def _piece(conn: sqlite3.Connection, sensor_id: int, width: int, piece, newest_first: bool, limit: int) -> list:
    source, lo, hi = piece
    if source is None:
        name, column, aggregates = "readings", "ts", "min(value), sum(value), max(value), count(*)"
    else:
        name, column, aggregates = table(source), "start", "min(min_value), sum(sum_value), max(max_value), sum(count)"
    where, args = ["sensor_id = ?"], [sensor_id]
    if lo is not None:
        where.append(f"{column} >= ?")
        args.append(lo)
    if hi is not None:
        where.append(f"{column} < ?")
        args.append(hi)
    direction = "DESC" if newest_first else "ASC"
    # Any bucket among the first `limit` of the merged answer is among the first
    # `limit` of each piece that has rows of it, so each piece needs no more.
    sql = (
        f"SELECT {floor_div(column, width)} AS b, {aggregates} FROM {name} "
        f"WHERE {' AND '.join(where)} GROUP BY b ORDER BY b {direction} LIMIT ?"
    )
    return conn.execute(sql, [*args, limit]).fetchall()
