"""core/rollups.py: bucket answers from rollups equal the same aggregates computed from the raw rows."""

import asyncio
import json
import math
import sqlite3
import time
from fractions import Fraction

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tornado.httpclient import AsyncHTTPClient

from smartanom import cli, history, rollups, schema
from smartanom.api import parse_time
from smartanom.history import Query
from smartanom.protocol import format_timestamp

T0 = 1_699_920_000.0  # a whole day (so a multiple of every bucket width)
DAY = 86400


def database() -> sqlite3.Connection:
    conn = sqlite3.connect(":memory:")
    schema.upgrade(conn)
    return conn


def write(conn, batch, fold=True):
    """What the storage writer does with one batch (core/storage.py `_flush`)."""
    with conn:
        before = rollups.last_id(conn)
        conn.executemany("INSERT INTO readings (sensor_id, ts, value) VALUES (?, ?, ?)", batch)
        if fold:
            rollups.fold_new(conn, before)


def truth(rows, sensor_id, width, since, until, newest_first):
    """Buckets computed in Python from the raw rows, with exact arithmetic for the bucket edges."""
    groups = {}
    for s, ts, value in rows:
        if s != sensor_id or (since is not None and ts < since) or (until is not None and ts >= until):
            continue
        groups.setdefault(math.floor(Fraction(ts) / width), []).append(value)
    return [
        (b * width, min(v), math.fsum(v) / len(v), max(v), len(v))
        for b, v in sorted(groups.items(), reverse=newest_first)
    ]


async def wait_for(condition, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    return condition()


def answer(conn, query):
    """Every bucket of `query`, walking the pages by cursor as a client does."""
    out, cursor = [], None
    while True:
        page = history.fetch(conn, Query(**{**query.__dict__, "cursor": cursor}))
        out += [(b.start, b.min, b.mean, b.max, b.count) for b in page.rows]
        if (cursor := page.next_cursor) is None:
            return out


# Times anywhere in five days, and times on or within an ulp of minute, hour and day edges.
edges = st.builds(
    lambda k, unit, nudge: nudge(T0 + k * unit),
    st.integers(-48, 72),
    st.sampled_from([60, 3600, DAY]),
    st.sampled_from([lambda t: t, lambda t: math.nextafter(t, -math.inf), lambda t: math.nextafter(t, math.inf)]),
)
times = st.one_of(st.floats(T0 - 2 * DAY, T0 + 3 * DAY), edges, st.integers(-2 * DAY, 3 * DAY).map(lambda s: T0 + s))
# Eighths: sums of a few hundred are exact in any order, so the mean must match to the bit.
values = st.integers(-8000, 8000).map(lambda k: k / 8)
readings = st.lists(st.tuples(st.sampled_from([1, 2]), times, values), max_size=120)
bounds = st.one_of(st.none(), times)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    batches=st.lists(st.tuples(readings, st.booleans()), min_size=1, max_size=4),
    since=bounds,
    until=bounds,
    width=st.sampled_from(sorted(history.BUCKETS.values())),
    newest_first=st.booleans(),
    limit=st.integers(1, 40),
    catch_up_chunk=st.integers(1, 50),
)
def test_buckets_from_rollups_equal_buckets_from_raw_rows(batches, since, until, width, newest_first, limit, catch_up_chunk):
    if since is not None and until is not None and since >= until:
        until = None
    conn = database()
    rows = []
    for batch, folded_by_writer in batches:
        write(conn, batch, fold=folded_by_writer)  # unfolded: an import, caught up below
        rows += batch
    while rollups.catch_up(conn, catch_up_chunk)[0] < rollups.last_id(conn):
        pass
    assert rollups.complete(conn)
    query = Query(1, since, until, limit=limit, newest_first=newest_first, bucket=width)
    assert answer(conn, query) == truth(rows, 1, width, since, until, newest_first)


def test_a_week_of_hourly_buckets_reads_the_hourly_rollup_and_raw_edges_only():
    conn = database()
    write(conn, [(1, T0 + i * 2.0, float(i % 7)) for i in range(7 * DAY // 2)])
    since, until = T0 + 1234.5, T0 + 7 * DAY - 10
    pieces = rollups.plan(since, until, [DAY, 3600, 60], {})
    assert [p[0] for p in pieces] == [None, 60, 3600, DAY, 3600, 60, None]
    assert pieces[0] == (None, since, T0 + 1260)  # under a minute of raw readings at each edge
    assert answer(conn, Query(1, since, until, limit=500, newest_first=False, bucket=3600))[1:3] == [
        (T0 + 3600, 0.0, sum(float(i % 7) for i in range(1800, 3600)) / 1800, 6.0, 1800),
        (T0 + 7200, 0.0, sum(float(i % 7) for i in range(3600, 5400)) / 1800, 6.0, 1800),
    ]


def test_readings_written_around_the_writer_are_not_answered_from_stale_rollups():
    conn = database()
    write(conn, [(1, T0 + 1, 1.0)])
    assert rollups.complete(conn)
    write(conn, [(1, T0 + 2, 5.0)], fold=False)  # e.g. an import with the hub stopped
    assert not rollups.complete(conn)
    write(conn, [(1, T0 + 3, 3.0)])  # the writer leaves it to catch_up rather than count twice
    assert answer(conn, Query(1, bucket=60)) == [(T0, 1.0, 3.0, 5.0, 3)]  # from raw rows meanwhile
    assert rollups.catch_up(conn) == (3, 3)
    assert conn.execute("SELECT count, sum_value FROM rollup_1m").fetchall() == [(3, 9.0)]
    assert answer(conn, Query(1, bucket=60)) == [(T0, 1.0, 3.0, 5.0, 3)]


def test_retention_of_one_resolution_leaves_the_others_exact():
    conn = database()
    rows = [(1, T0 + i * 30.0, float(i % 11)) for i in range(3 * DAY // 30)]
    write(conn, rows)
    deleted = sum(rollups.purge(conn, 60, T0 + DAY + 17, chunk=100))
    assert deleted == DAY // 60
    assert conn.execute("SELECT min(start) FROM rollup_1m").fetchone()[0] == T0 + DAY
    # Hourly buckets still come from the hourly rollup; minute buckets before the
    # horizon from raw readings (still kept here), so both stay exact.
    for width in (60, 3600, DAY):
        query = Query(1, T0 + 45, None, limit=10000, newest_first=False, bucket=width)
        assert answer(conn, query) == truth(rows, 1, width, T0 + 45, None, False)
    # Raw readings purged too: what is older than the minute horizon is then
    # served only by the coarser rollups.
    with conn:
        conn.execute("DELETE FROM readings WHERE ts < ?", (T0 + DAY,))
    assert answer(conn, Query(1, T0, T0 + 2 * DAY, limit=10, newest_first=False, bucket=DAY)) == truth(rows, 1, DAY, T0, T0 + 2 * DAY, False)
    assert answer(conn, Query(1, T0, T0 + DAY, bucket=60)) == []


@pytest.mark.parametrize("ts", [T0 - 1e-6, math.nextafter(T0, -math.inf), -90.5, -60.0, 0.0])
def test_a_reading_lands_in_the_bucket_that_exact_arithmetic_gives(ts):
    conn = database()
    write(conn, [(1, ts, 1.0)])
    for width in (60, 3600, DAY):
        start = math.floor(Fraction(ts) / width) * width
        assert [b[0] for b in answer(conn, Query(1, bucket=width))] == [start]
        assert conn.execute(f"SELECT start FROM {rollups.table(width)}").fetchall() == [(start,)]


def old_database(path, rows):
    """A database as a release before rollups left it (schema 1), with readings."""
    conn = sqlite3.connect(path)
    conn.executescript(schema.MIGRATIONS[0].sql + "PRAGMA user_version = 1;")
    with conn:
        conn.executemany("INSERT INTO readings (sensor_id, ts, value) VALUES (?, ?, ?)", rows)
    conn.close()


def state(path):
    conn = sqlite3.connect(path)
    try:
        return rollups.progress(conn), conn.execute("SELECT sum(count) FROM rollup_1h").fetchone()[0]
    finally:
        conn.close()


@pytest.mark.gen_test(timeout=30)
async def test_the_hub_folds_an_older_database_in_and_keeps_live_readings_in_the_rollups(hub_factory, ws_client, tmp_path, monkeypatch):
    from smartanom import storage

    monkeypatch.setattr(storage, "CATCH_UP_CHUNK", 700)  # several catch-up rounds between flushes
    db = tmp_path / "old.db"
    old = [(1, T0 + i * 7.5, float(i % 13)) for i in range(5000)]
    old_database(db, old)
    hub = await hub_factory(f"storage:\n  path: {db}\n  flush_interval: 0.05\ndevices:\n  - id: 1\n    name: Tank\n    sensors: [{{id: 1, type: ph}}]\n")
    client = await ws_client(hub, "/ws/sensor/1/")
    live = []
    for i in range(30):
        ts = T0 + 2 * DAY + i * 61.25
        stamp = format_timestamp(ts)
        await client.request({"type": "sensor_data", "value": i / 4, "timestamp": stamp}, type="sensor_data_update")
        live.append((1, parse_time("t", stamp), i / 4))
    assert await wait_for(lambda: state(db) == ((5030, 5030), 5030))

    since = format_timestamp(T0 + 1000)
    response = await AsyncHTTPClient().fetch(f"{hub.url}/api/sensors/1/readings?since={since}&bucket=1h&order=asc&limit=10000")
    got = [(parse_time("t", b["timestamp"]), b["min"], b["mean"], b["max"], b["count"]) for b in json.loads(response.body)["buckets"]]
    assert got == truth(old + live, 1, 3600, T0 + 1000, None, False)


def test_rebuild_rollups_command_folds_everything_and_can_start_from_scratch(tmp_path, capsys):
    db = tmp_path / "old.db"
    old_database(db, [(2, T0 + i, 1.0) for i in range(1000)])
    config = tmp_path / "hub.yaml"
    config.write_text(f"storage:\n  path: {db}\ndevices: []\n")
    assert cli.main(["rebuild-rollups", "--config", str(config)]) == 0
    assert state(db) == ((1000, 1000), 1000)
    assert cli.main(["rebuild-rollups", "--config", str(config), "--from-scratch"]) == 0
    assert state(db) == ((1000, 1000), 1000)  # rebuilt, not added twice
    out = capsys.readouterr()
    assert "rollups complete (1,000 reading ids folded in)" in out.out
    assert "1.00k/1.00k" in out.err  # tqdm's bar
    assert cli.main(["rebuild-rollups", "--config", str(tmp_path / "missing.yaml")]) == 2


def test_rebuild_rollups_interrupted_with_ctrl_c_says_so_and_a_rerun_completes(tmp_path):
    import signal
    import subprocess
    import sys

    db = tmp_path / "old.db"
    rows = 1_500_000  # several seconds of folding: long enough to interrupt mid-way
    old_database(db, [(1 + i % 10, T0 + i * 0.25, float(i % 17)) for i in range(rows)])
    config = tmp_path / "hub.yaml"
    config.write_text(f"storage:\n  path: {db}\ndevices: []\n")
    command = [sys.executable, "-m", "smartanom.cli", "rebuild-rollups", "--config", str(config)]
    proc = subprocess.Popen(command, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    seen = ""
    while "rollups:" not in seen:  # the bar is drawn: the fold loop has begun
        char = proc.stderr.read(1)
        assert char, seen
        seen += char
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, (out, err)
    assert "Traceback" not in err, err
    assert "interrupted" in err and "run the command again to go on" in err, err
    (covered, newest), _ = state(db)
    assert newest == rows and covered < rows  # stopped between chunks; what was folded is kept
    rerun = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 0, rerun.stderr
    assert state(db) == ((rows, rows), rows)  # completed, nothing counted twice
