"""Generates a year of history for SENSORS sensors, one reading every 2 s, with bulk SQL.

A full year of raw readings is 20 x 15.8 million = 315 million rows (about 20 GB
and most of an hour to write on the 2-core benchmark machine). What a hub keeps
under the retention the issue proposes (raw readings 30 days, rollups for the
year) is much smaller, and that is what this makes:

- raw readings for the last RAW_DAYS days, from midnight (26-27 million rows
  for 20 sensors x 30 days), inserted in arrival order by one INSERT ... SELECT over a recursive
  CTE, then folded into the rollups by the storage writer's own code
  (`rollups.fold`, in chunks);
- for the days before that, the per-minute rollups those readings would have
  produced (30 readings a minute), written directly from the same formula, and
  the hourly and daily rollups summed up from them in SQL.

The database is then what the hub would hold after a year under that retention
(rollup_state says the rollups are complete). Values follow a slow saw-tooth
per sensor plus a ramp within each minute, so every bucket differs.

    .venv/bin/python bench/year.py /tmp/year.db            # 20 sensors, 365 days, raw 30 days
    .venv/bin/python bench/year.py /tmp/y.db --days 7 --raw-days 7
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from smartanom import rollups, schema  # noqa: E402

STEP = 2  # seconds between readings of one sensor
PER_MINUTE = 60 // STEP


def _base(minute: str, sensor: str) -> str:
    """SQL: a sensor's level during one minute (a saw-tooth over 100 minutes)."""
    return f"(6.0 + (({minute} * 7 + {sensor} * 13) % 100) / 100.0)"


def generate(path: Path, sensors: int = 20, days: int = 365, raw_days: int = 30, end: float | None = None, log=print) -> float:
    """Fill `path` (a new file); returns the end time (exclusive): now, to the minute.

    Raw readings start at a midnight (UTC) `raw_days` before the last one, so
    the rollups written from the formula end on a day boundary.
    """
    end = int((time.time() if end is None else end) // 60 * 60)
    start, raw_start = end - days * 86400, (end // 86400 - raw_days) * 86400
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("PRAGMA cache_size=-262144")  # 256 MB: the index pages of 20 sensors stay in memory
    schema.upgrade(conn)
    conn.execute("CREATE TEMP TABLE sensors (id INTEGER PRIMARY KEY)")
    conn.executemany("INSERT INTO sensors VALUES (?)", [(i,) for i in range(1, sensors + 1)])

    started = time.perf_counter()
    with conn:
        # Sensor s reads at s * 0.05 s past each even second, as 20 devices would.
        conn.execute(f"""
WITH RECURSIVE k(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM k WHERE i < {(end - raw_start) // STEP - 1})
INSERT INTO readings (sensor_id, ts, value)
SELECT s.id, {raw_start} + k.i * {STEP} + s.id * 0.05,
       {_base(f'({raw_start} / 60 + k.i / {PER_MINUTE})', 's.id')} + (k.i % {PER_MINUTE}) * 0.001
FROM k CROSS JOIN sensors AS s  -- SQLite keeps the left side of CROSS JOIN outer: arrival order
""")
    raw = conn.execute("SELECT count(*) FROM readings").fetchone()[0]
    log(f"raw readings: {raw:,} ({raw_days} days) in {time.perf_counter() - started:.0f} s")

    started = time.perf_counter()
    ramp_sum = sum(i * 0.001 for i in range(PER_MINUTE))
    with conn:
        conn.execute(f"""
WITH RECURSIVE m(i) AS (SELECT {start // 60} UNION ALL SELECT i + 1 FROM m WHERE i < {raw_start // 60 - 1})
INSERT INTO rollup_1m (sensor_id, start, min_value, max_value, sum_value, count, first_ts, last_ts)
SELECT s.id, m.i * 60, {_base('m.i', 's.id')}, {_base('m.i', 's.id')} + {(PER_MINUTE - 1) * 0.001},
       {_base('m.i', 's.id')} * {PER_MINUTE} + {ramp_sum}, {PER_MINUTE}, m.i * 60 + s.id * 0.05, m.i * 60 + {60 - STEP} + s.id * 0.05
FROM sensors AS s CROSS JOIN m""")
        for width in (3600, 86400):
            conn.execute(f"""
INSERT INTO {rollups.table(width)} (sensor_id, start, min_value, max_value, sum_value, count, first_ts, last_ts)
SELECT sensor_id, start / {width} * {width}, min(min_value), max(max_value), sum(sum_value), sum(count), min(first_ts), max(last_ts)
FROM rollup_1m WHERE start < {raw_start} GROUP BY 1, 2""")
    minutes = conn.execute("SELECT count(*) FROM rollup_1m").fetchone()[0]
    log(f"rollups before the raw window: {minutes:,} minute rows ({days - raw_days} days) in {time.perf_counter() - started:.0f} s")

    started = time.perf_counter()
    newest = rollups.last_id(conn)
    for first in range(0, newest, 2_000_000):
        with conn:
            rollups.fold(conn, first, min(first + 2_000_000, newest))
    log(f"raw window folded into the rollups (the writer's code) in {time.perf_counter() - started:.0f} s")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.execute("ANALYZE")
    conn.close()
    return float(end)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("db", type=Path, help="database file to create (must not exist)")
    parser.add_argument("--sensors", type=int, default=20)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--raw-days", type=int, default=30)
    args = parser.parse_args()
    if args.db.exists():
        parser.error(f"{args.db} exists; remove it first")
    end = generate(args.db, args.sensors, args.days, args.raw_days)
    print(f"{args.db}: ends {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(end))}")


if __name__ == "__main__":
    main()
