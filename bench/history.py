"""Benchmark: how fast the history API answers chart queries on a week of 1 Hz data.

Fills a database (the hub's own schema) with DAYS x 24 h of one reading per second
for each of SENSORS sensors, starts a real hub on it on a free loopback port, and
times GET /api/sensors/{id}/readings?since=<DAYS ago>&bucket=... over HTTP: one
sensor at a time, then all sensors at once (what the dashboard does when it opens
on the 7 d window). Not a test: it prints figures for docs/perf.md.

    .venv/bin/python bench/history.py                  # 7 days x 20 sensors
    .venv/bin/python bench/history.py --db /tmp/h.db   # keep the database for another run
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

from tornado.httpclient import AsyncHTTPClient

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from smartanom.config import load_config  # noqa: E402
from smartanom.hub import Hub  # noqa: E402
from smartanom.plugins import PluginHost  # noqa: E402
from smartanom import schema  # noqa: E402


def fill(path: Path, sensors: int, days: int, end: float) -> int:
    """One reading per second per sensor for `days` days up to `end`, in arrival order."""
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=OFF")
    schema.upgrade(conn)
    start, seconds = end - days * 86400, days * 86400

    def rows(first: int, last: int):
        for i in range(first, last):
            for sensor in range(1, sensors + 1):
                yield sensor, start + i, 6.0 + math.sin(i / 3600 + sensor)

    for first in range(0, seconds, 3600):
        with conn:
            conn.executemany("INSERT INTO readings (sensor_id, ts, value) VALUES (?, ?, ?)", rows(first, min(first + 3600, seconds)))
    count = conn.execute("SELECT count(*) FROM readings").fetchone()[0]
    conn.close()
    return count


def write_config(directory: Path, db: Path, sensors: int) -> Path:
    lines = ["storage:", f"  path: {db}", "devices:", "  - id: 1", "    name: Bench", "    sensors:"]
    lines += [f"      - {{id: {i}, type: ph}}" for i in range(1, sensors + 1)]
    path = directory / "bench.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


async def timed(client: AsyncHTTPClient, url: str) -> tuple[float, int]:
    started = time.perf_counter()
    response = await client.fetch(url)
    return time.perf_counter() - started, len(response.body)


async def measure(config_path: Path, sensors: int, days: int, end: float, repeat: int) -> None:
    host = PluginHost()
    config = load_config(config_path, host.collect_platforms())
    config.server.host, config.server.port = "127.0.0.1", 0
    hub = Hub(config, host)
    await hub.start()
    client = AsyncHTTPClient(max_clients=sensors)
    since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(end - days * 86400))
    try:
        print(f"{'query':<34} {'points':>7} {'median':>8} {'p95':>8} {'max':>8}")
        for bucket in ("1h", "5m", "1m"):
            base = f"{hub.url}/api/sensors/%d/readings?since={since}&bucket={bucket}&order=asc&limit=10000"
            times, size = [], 0
            for _ in range(repeat):
                for sensor in range(1, sensors + 1):
                    seconds, size = await timed(client, base % sensor)
                    times.append(seconds)
            times.sort()
            points = days * 86400 // {"1h": 3600, "5m": 300, "1m": 60}[bucket]
            p95 = times[min(len(times) - 1, int(len(times) * 0.95))]
            print(f"one sensor, {days} d, bucket={bucket:<3}        {points:>7} {statistics.median(times) * 1000:>6.0f}ms {p95 * 1000:>6.0f}ms {times[-1] * 1000:>6.0f}ms")
        for bucket in ("1h", "5m"):
            base = f"{hub.url}/api/sensors/%d/readings?since={since}&bucket={bucket}&order=asc&limit=10000"
            walls = []
            for _ in range(repeat):
                started = time.perf_counter()
                await asyncio.gather(*(timed(client, base % s) for s in range(1, sensors + 1)))
                walls.append(time.perf_counter() - started)
            print(f"all {sensors} sensors at once, bucket={bucket}: {statistics.median(walls):.2f} s (median of {repeat})")
        times = []
        for sensor in range(1, sensors + 1):
            seconds, _ = await timed(client, f"{hub.url}/api/sensors/{sensor}/readings?limit=1000")
            times.append(seconds)
        print(f"newest 1000 raw readings, one sensor: median {statistics.median(times) * 1000:.0f} ms")
    finally:
        await hub.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sensors", type=int, default=20)
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=3, help="rounds of queries per figure")
    parser.add_argument("--db", type=Path, help="database to create, or reuse if it exists (default: a temporary file)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        db = args.db or directory / "bench.db"
        meta = db.with_suffix(".end")
        if db.exists() and meta.exists():
            end = float(meta.read_text())
            print(f"Reusing {db}")
        else:
            end = time.time()
            started = time.perf_counter()
            count = fill(db, args.sensors, args.days, end)
            meta.write_text(repr(end))
            print(f"Filled {db}: {count:,} readings in {time.perf_counter() - started:.0f} s")
        print(f"Database: {os.path.getsize(db) / 1e6:.0f} MB; {os.cpu_count()} CPUs; SQLite {sqlite3.sqlite_version}")
        asyncio.run(measure(write_config(directory, db, args.sensors), args.sensors, args.days, end, args.repeat))


if __name__ == "__main__":
    main()
