"""Benchmark for history at farm scale (issue 18): one command, figures for docs/perf.md.

    .venv/bin/python bench/rollups.py --db /tmp/year.db     # makes the year once (~5 min), then measures
    .venv/bin/python bench/rollups.py --db /tmp/year.db --only queries,browser

Phases (each bounded in time; the machine is shared):

queries   a hub (subprocess, `smartanom run`) on the generated year (bench/year.py:
          20 sensors, a reading every 2 s, raw readings for the last 30 days,
          rollups for the year). Times over HTTP what the dashboard asks for
          when it opens (per sensor: the buckets, and the raw readings of the
          last 20 s), at most 6 requests at a time as a browser does, for the
          7 d, 30 d and 1 y windows, and one sensor's 7 days. "Before": the same
          requests with the rollups bypassed (rollup_state says they lag, so the
          hub reads raw readings, as before rollups); restored afterwards.
browser   the dashboard in Chromium (Playwright) on that hub, 7 d window: from
          navigation start until all 20 charts are drawn.
size      bytes per million readings: raw table, its index, each rollup (dbstat).
writer    a hub in this process on a fresh database, a feeder on its event loop
          publishing readings as plugins do at a fixed rate; meanwhile a load
          generator process (bench/load.py) measures the live WebSocket round
          trip. Rows/s stored, writer lag, p99. Also the writer's anatomy:
          one thread inserting batches with and without rollups, with the wide
          or the narrow index, with a busy Python thread beside it.
farm      a central hub fed over MQTT (a Mosquitto broker on loopback) by 20 edge
          hubs x 20 sensors at 1 Hz (see bench/farm.py).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(BENCH.parent))

import year  # noqa: E402
from keepalive import Pool  # noqa: E402
from proc import cpu_seconds  # noqa: E402

SERVING = re.compile(r"Serving on http://[^:]+:(\d+)")
SENSORS = 20
TARGETS = {"7d_ms": 50, "1y_ms": 200, "one_sensor_7d_ms": 10, "browser_7d_ms": 1000, "writer_rows_per_s": 50_000, "p99_ms": 20}


def hub_config(directory: Path, db: Path, extra: str = "") -> Path:
    lines = [
        "server:", "  host: 127.0.0.1", "  rate_limit: {per_second: 1000000, burst: 1000000}",
        "storage:", f"  path: {db}",
        # No retention here: the benchmark's database stays as generated.
        "  rollups: {keep_days_1m: null}",
        extra,
        "devices:",
    ]
    for d in range(SENSORS // 5):
        lines += [f"  - id: {d + 1}", f"    name: Greenhouse {d + 1}", "    offline_after: 3600", "    sensors:"]
        lines += [f"      - {{id: {d * 5 + i}, type: ph}}" for i in range(1, 6)]
    path = directory / "hub.yaml"
    path.write_text("\n".join(line for line in lines if line) + "\n")
    return path


class HubProcess:
    def __init__(self, config: Path, workdir: Path):
        self.log_path = workdir / "hub.log"
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "smartanom.cli", "run", "--config", str(config), "--port", "0"],
            cwd=workdir, stdout=self._log, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            match = SERVING.search(self.log_path.read_text())
            if match:
                self.url = f"http://127.0.0.1:{match.group(1)}"
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        self.proc.kill()
        raise RuntimeError(f"hub did not start:\n{self.log_path.read_text()[-3000:]}")

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=120)
        self._log.close()


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int(ts % 1 * 1000):03d}Z"


# --- queries -------------------------------------------------------------------------------

WINDOWS = {"7d": (7 * 86400, "1h"), "30d": (30 * 86400, "1h"), "1y": (365 * 86400, "1d")}


async def dashboard_round(client: Pool, window: str, now: float, batch: bool = True) -> float:
    """What the dashboard requests for one window, all sensors; returns the wall time.

    batch: as the dashboard does now, two requests (GET /api/readings for every
    sensor: the buckets, and the raw readings of the last 20 s); otherwise as it
    did before, those two requests per sensor.
    """
    seconds, bucket = WINDOWS[window]
    since, split = _iso(now - seconds), _iso(now - 20)
    ids = ",".join(str(s) for s in range(1, SENSORS + 1))
    paths = [f"/api/readings?sensors={ids}&"] if batch else [f"/api/sensors/{s}/readings?" for s in range(1, SENSORS + 1)]
    requests = []
    for path in paths:
        requests.append(f"{path}since={since}&until={split}&bucket={bucket}&order=asc&limit=10000")
        requests.append(f"{path}since={split}&order=asc&limit=10000")
    started = time.perf_counter()
    responses = await asyncio.gather(*(client.get(r) for r in requests))
    elapsed = time.perf_counter() - started
    assert all(status == 200 for status, _ in responses), responses[0]
    return elapsed


def _stats(times: list[float]) -> dict:
    times = sorted(times)
    return {
        "rounds": len(times),
        "p50_ms": round(statistics.median(times) * 1000, 1),
        "p95_ms": round(times[min(len(times) - 1, int(len(times) * 0.95))] * 1000, 1),
        "max_ms": round(times[-1] * 1000, 1),
    }


async def time_queries(url: str, pid: int, now: float, rounds: int, windows=("7d", "30d", "1y"), batch: bool = True) -> dict:
    client = Pool(url)  # 6 kept-alive connections, as a browser
    out = {}
    try:
        await dashboard_round(client, "7d", now, batch)  # warm the caches once
        for window in windows:
            cpu = cpu_seconds(pid)
            out[f"dashboard_{window}"] = _stats([await dashboard_round(client, window, now, batch) for _ in range(rounds)])
            # The hub's own CPU per dashboard opening: what the wall time would be on
            # an idle core, whatever else shares the machine.
            out[f"dashboard_{window}"]["hub_cpu_ms"] = round((cpu_seconds(pid) - cpu) / rounds * 1000, 1)
        one = []
        since = _iso(now - 7 * 86400)
        for k in range(rounds * 5):
            started = time.perf_counter()
            await client.get(f"/api/sensors/{1 + k % SENSORS}/readings?since={since}&bucket=1h&order=asc&limit=10000")
            one.append(time.perf_counter() - started)
        out["one_sensor_7d_1h"] = _stats(one)
    finally:
        client.close()
    return out


def _set_covered(db: Path, value: float | None) -> float:
    conn = sqlite3.connect(db)
    try:
        with conn:
            old = conn.execute("SELECT value FROM rollup_state WHERE name = 'covered_id'").fetchone()[0]
            conn.execute("UPDATE rollup_state SET value = ? WHERE name = 'covered_id'", (value,))
        return old
    finally:
        conn.close()


def phase_queries(db: Path, end: float, workdir: Path, rounds: int, before_rounds: int) -> dict:
    now = end  # the generated data ends here; windows end at it as if it were now
    hub = HubProcess(hub_config(workdir, db), workdir)
    try:
        after = asyncio.run(time_queries(hub.url, hub.proc.pid, now, rounds))
        per_sensor = asyncio.run(time_queries(hub.url, hub.proc.pid, now, rounds, batch=False))
        covered = _set_covered(db, -1.0)  # rollups "lag": the hub reads raw readings, as before them
        try:
            before = asyncio.run(time_queries(hub.url, hub.proc.pid, now, before_rounds, windows=("7d", "30d"), batch=False))
        finally:
            _set_covered(db, covered)
    finally:
        hub.stop()
    return {"after": after, "rollups_one_request_per_sensor": per_sensor, "before": before}


# --- browser -------------------------------------------------------------------------------

def phase_browser(db: Path, end: float, workdir: Path, rounds: int) -> dict:
    from playwright.sync_api import expect, sync_playwright

    hub = HubProcess(hub_config(workdir, db), workdir)
    times = []
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox", "--disable-gpu"])
            for _ in range(rounds):
                page = browser.new_page()
                page.add_init_script("localStorage.setItem('smartanom.window', '7d')")
                page.goto(hub.url + "/")
                # A locator, not wait_for_function: the page's CSP forbids the eval that needs.
                expect(page.locator('[data-chart-window="7d"][data-points]')).to_have_count(SENSORS, timeout=60_000)
                times.append(page.evaluate("performance.now()") / 1000)
                points = page.evaluate("[...document.querySelectorAll('[data-points]')].map(e => +e.dataset.points)")
                page.close()
            browser.close()
    finally:
        hub.stop()
    return {"dashboard_7d_drawn": _stats(times), "points_per_chart": points[:3]}


# --- size ----------------------------------------------------------------------------------

def phase_size(db: Path) -> dict:
    conn = sqlite3.connect(db)
    try:
        sizes = dict(conn.execute("SELECT name, sum(pgsize) FROM dbstat GROUP BY name"))
        raw = conn.execute("SELECT count(*) FROM readings").fetchone()[0]
        minutes = conn.execute("SELECT sum(count) FROM rollup_1m").fetchone()[0]
    finally:
        conn.close()
    per_million = lambda name, n: round(sizes.get(name, 0) / n * 1e6 / 1e6, 2)  # noqa: E731  MB per million readings
    return {
        "raw_rows": raw,
        "readings_covered_by_rollups": minutes,
        "mb_per_million_readings": {
            "readings table": per_million("readings", raw),
            "readings_sensor_ts_value index": per_million("readings_sensor_ts_value", raw),
            "rollup_1m": per_million("rollup_1m", minutes),
            "rollup_1h": per_million("rollup_1h", minutes),
            "rollup_1d": per_million("rollup_1d", minutes),
        },
        "file_mb": round(os.path.getsize(db) / 1e6),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", type=Path, help="the year's database: made if missing, reused if there (default: temporary)")
    parser.add_argument("--only", default="queries,browser,size,writer,farm", help="comma-separated phases")
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--raw-days", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=20, help="rounds of dashboard requests per window")
    parser.add_argument("--before-rounds", type=int, default=3, help="rounds without rollups (slow)")
    parser.add_argument("--writer-rate", type=int, default=50_000, help="readings/s the feeder offers")
    parser.add_argument("--writer-seconds", type=float, default=20.0)
    parser.add_argument("--anatomy-rows", type=int, default=500_000, help="rows per variant of the writer's anatomy")
    parser.add_argument("--browser-rounds", type=int, default=5)
    parser.add_argument("--farm-minutes", type=float, default=60.0, help="simulated minutes of the farm phase")
    parser.add_argument("--farm-speed", type=float, default=20.0, help="simulated seconds per real second in the farm phase")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    phases = args.only.split(",")
    results: dict = {"machine": {"cpus": os.cpu_count(), "sqlite": sqlite3.sqlite_version, "python": sys.version.split()[0], "load_average": os.getloadavg()}}

    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        db = args.db or workdir / "year.db"
        meta = db.with_suffix(".end")
        if any(p in phases for p in ("queries", "browser", "size")):
            if db.exists() and meta.exists():
                end = float(meta.read_text())
            else:
                started = time.perf_counter()
                end = year.generate(db, SENSORS, args.days, args.raw_days, log=lambda m: print(m, flush=True))
                meta.write_text(repr(end))
                results["generate_s"] = round(time.perf_counter() - started)
        if "size" in phases:
            results["size"] = phase_size(db)
            print(json.dumps(results["size"], indent=1), flush=True)
        if "queries" in phases:
            results["queries"] = phase_queries(db, end, workdir, args.rounds, args.before_rounds)
            print(json.dumps(results["queries"], indent=1), flush=True)
        if "browser" in phases:
            results["browser"] = phase_browser(db, end, workdir, args.browser_rounds)
            print(json.dumps(results["browser"], indent=1), flush=True)
        if "writer" in phases:
            import writer_bench

            writer_dir = workdir / "writer"
            writer_dir.mkdir()
            config = hub_config(writer_dir, writer_dir / "unused.db")
            results["writer"] = writer_bench.run(config, writer_dir, args.writer_rate, args.writer_seconds, args.anatomy_rows)
            print(json.dumps(results["writer"], indent=1), flush=True)
        if "farm" in phases:
            import farm

            results["farm"] = farm.run(workdir, args.farm_minutes, args.farm_speed)
            print(json.dumps(results["farm"], indent=1), flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
