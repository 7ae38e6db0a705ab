"""The storage writer under load, and where its time goes (bench/rollups.py --only writer).

hub       a hub in this process on a fresh database; a feeder task on its event
          loop publishes readings for 19 sensors at a fixed rate, as plugins do
          (`Hub.accept_reading`), while bench/roundtrip.py, another process,
          measures the live WebSocket round trip on the 20th. Rows stored per
          second (from `storage.stored`), the most readings waiting, the writer's
          lag, and the round trip, with rollups on and off.
anatomy   the writer's SQL alone in one thread: batches of readings inserted with
          and without the rollup fold, with the covering index or a narrow one,
          different batch sizes, with a busy Python thread beside it (the event
          loop's share of the GIL) or without.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import sys
import threading
import time
from pathlib import Path

from smartanom import rollups, schema
from smartanom.config import load_config
from smartanom.hub import Hub
from smartanom.plugins import PluginHost
from smartanom.storage import connect

BENCH = Path(__file__).resolve().parent


async def _hub(config_path: Path, db: Path, rate: int, seconds: float, rollups_on: bool) -> dict:
    host = PluginHost()
    config = load_config(config_path, host.collect_platforms())
    config.server.port = 0
    config.storage.path = str(db)
    config.storage.rollups.enabled = rollups_on
    hub = Hub(config, host)
    await hub.start()
    loop = asyncio.get_running_loop()
    sensors = [hub.registry.sensor(i) for i in range(2, 21)]
    state = {"sent": 0, "stop": False, "max_pending": 0, "max_lag": 0.0}

    async def feed() -> None:
        start = loop.time()
        while not state["stop"]:
            await asyncio.sleep(0.005)
            due = int((loop.time() - start) * rate)
            now = time.time()
            for k in range(state["sent"], due):
                hub.accept_reading(sensors[k % 19], 6.0 + (k % 100) / 100, now)
            state["sent"] = due

    async def watch() -> None:
        while not state["stop"]:
            state["max_pending"] = max(state["max_pending"], hub.storage.pending)
            state["max_lag"] = max(state["max_lag"], hub.storage.lag)
            await asyncio.sleep(0.05)

    tasks = [asyncio.ensure_future(feed()), asyncio.ensure_future(watch())]
    probe = await asyncio.create_subprocess_exec(
        sys.executable, str(BENCH / "roundtrip.py"), "127.0.0.1", str(hub.port), "1", "50", str(seconds + 3),
        stdout=asyncio.subprocess.PIPE,
    )
    await asyncio.sleep(3)  # warm-up: the first flushes, the prober connected
    writer = hub.storage._thread.native_id
    t0, s0, f0, w0 = time.perf_counter(), hub.storage.stored, state["sent"], _thread_cpu(writer)
    state["max_pending"], state["max_lag"] = 0, 0.0
    cpu0 = time.process_time()
    await asyncio.sleep(seconds)
    t1, s1, f1, w1 = time.perf_counter(), hub.storage.stored, state["sent"], _thread_cpu(writer)
    cpu1 = time.process_time()
    out, _ = await probe.communicate()
    state["stop"] = True
    await asyncio.gather(*tasks)
    drained_from = time.perf_counter()
    while hub.storage.pending and time.perf_counter() - drained_from < 60:
        await asyncio.sleep(0.05)
    drain = time.perf_counter() - drained_from
    await hub.stop()
    conn = sqlite3.connect(db)
    rows = conn.execute("SELECT count(*) FROM readings").fetchone()[0]
    folded = conn.execute("SELECT sum(count) FROM rollup_1m").fetchone()[0] or 0
    conn.close()
    return {
        "rollups": rollups_on,
        "offered_per_s": round((f1 - f0) / (t1 - t0)),
        "stored_per_s": round((s1 - s0) / (t1 - t0)),
        "hub_process_cpu_cores": round((cpu1 - cpu0) / (t1 - t0), 2),
        "writer_thread_cpu_cores": round((w1 - w0) / (t1 - t0), 2),
        "writer_cpu_us_per_row": round((w1 - w0) / max(1, s1 - s0) * 1e6, 2),
        "max_pending": state["max_pending"],
        "max_lag_s": round(state["max_lag"], 3),
        "drain_after_s": round(drain, 2),
        "rows": rows,
        "rows_in_rollups": folded,
        "dropped": hub.storage.dropped,
        "roundtrip": json.loads(out),
    }


def _thread_cpu(native_id: int) -> float:
    """CPU seconds of one thread of this process (Linux /proc)."""
    fields = Path(f"/proc/self/task/{native_id}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _insert_rate(path: Path, batches: list[list], fold: bool, narrow: bool, busy: bool) -> float:
    for suffix in ("", "-wal", "-shm"):
        try:
            os.remove(f"{path}{suffix}")
        except FileNotFoundError:
            pass
    conn = connect(path)
    schema.upgrade(conn)
    if narrow:
        conn.executescript("DROP INDEX readings_sensor_ts_value; CREATE INDEX readings_sensor_ts ON readings (sensor_id, ts);")
    stop = threading.Event()

    def spin() -> None:  # pure Python, as a busy event loop: it holds the GIL between switch intervals
        x = 0
        while not stop.is_set():
            for _ in range(2000):
                x += 1

    spinner = threading.Thread(target=spin, daemon=True)
    if busy:
        spinner.start()
    started, cpu = time.perf_counter(), time.thread_time()
    for batch in batches:
        with conn:
            before = rollups.last_id(conn)
            conn.executemany("INSERT INTO readings (sensor_id, ts, value) VALUES (?, ?, ?)", batch)
            if fold:
                rollups.fold_new(conn, before)
    elapsed, cpu = time.perf_counter() - started, time.thread_time() - cpu
    stop.set()
    conn.close()
    rows = sum(map(len, batches))
    # Wall time shows the GIL and the machine's other work; this thread's own CPU
    # time per row is the cost of the SQL itself.
    return {"rows_per_s": round(rows / elapsed), "cpu_us_per_row": round(cpu / rows * 1e6, 2)}


def anatomy(workdir: Path, rows: int = 500_000) -> list[dict]:
    now = time.time()
    readings = [(1 + i % 20, now + i / 20_000, 6.0 + (i % 100) / 100) for i in range(rows)]
    out = []
    for batch_size in (25_000, 2_500):
        batches = [readings[i : i + batch_size] for i in range(0, rows, batch_size)]
        for narrow in (False, True):
            for fold in (True, False):
                for busy in (False, True):
                    rate = _insert_rate(workdir / "anatomy.db", batches, fold, narrow, busy)
                    out.append({"batch": batch_size, "index": "(sensor_id, ts)" if narrow else "(sensor_id, ts, value)", "rollups": fold, "busy_thread": busy, **rate})
                    print(out[-1], flush=True)
    return out


def run(config_path: Path, workdir: Path, rate: int, seconds: float, anatomy_rows: int = 500_000) -> dict:
    result = {}
    for on in (True, False):
        db = workdir / f"writer-{on}.db"
        result["rollups_on" if on else "rollups_off"] = asyncio.run(_hub(config_path, db, rate, seconds, on))
        print(result["rollups_on" if on else "rollups_off"], flush=True)
    if anatomy_rows:
        result["anatomy"] = anatomy(workdir, anatomy_rows)
    return result
