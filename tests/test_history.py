"""core/history.py: paging and downsampling on a real SQLite file with the hub's schema."""

import asyncio
import sqlite3
import threading

import pytest

from smartanom import history
from smartanom.history import History, Query
from smartanom import schema

T0 = 1_699_999_200.0  # a multiple of 3600, so buckets start at T0


@pytest.fixture
def db(tmp_path):
    path = tmp_path / "h.db"
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    schema.upgrade(conn)
    yield path, conn
    conn.close()


def insert(conn, rows):
    with conn:
        conn.executemany("INSERT INTO readings (sensor_id, ts, value) VALUES (?, ?, ?)", rows)


def test_latest_is_the_newest_by_time_not_by_arrival(db):
    path, conn = db
    insert(conn, [(1, T0 + 10, 1.0), (1, T0 + 5, 2.0), (2, T0 + 99, 3.0)])
    assert history.latest(conn, 1).value == 1.0
    assert history.latest(conn, 3) is None


def test_pages_walk_every_reading_once_even_with_equal_timestamps(db):
    path, conn = db
    # Three readings share each timestamp, so page boundaries fall inside ties.
    rows = [(1, T0 + i // 3, float(i)) for i in range(20)] + [(2, T0, -1.0)]
    insert(conn, rows)
    for newest_first in (True, False):
        seen, cursor = [], None
        while True:
            page = history.fetch(conn, Query(1, limit=4, newest_first=newest_first, cursor=cursor))
            seen += [r.value for r in page.rows]
            cursor = page.next_cursor
            if cursor is None:
                break
        assert sorted(seen) == [float(i) for i in range(20)]
        assert len(seen) == 20
        times = [T0 + int(v) // 3 for v in seen]
        assert times == sorted(times, reverse=newest_first)


def test_since_is_inclusive_and_until_exclusive(db):
    path, conn = db
    insert(conn, [(1, T0 + i, float(i)) for i in range(10)])
    page = history.fetch(conn, Query(1, since=T0 + 2, until=T0 + 5, newest_first=False))
    assert [r.value for r in page.rows] == [2.0, 3.0, 4.0]
    assert page.next_cursor is None


def test_last_full_page_has_no_next(db):
    path, conn = db
    insert(conn, [(1, T0 + i, float(i)) for i in range(4)])
    assert history.fetch(conn, Query(1, limit=4)).next_cursor is None
    assert history.fetch(conn, Query(1, limit=3)).next_cursor == (T0 + 1, 2)


def test_buckets_hold_min_mean_max_and_count_aligned_to_the_width(db):
    path, conn = db
    # Minute 0: 1, 2, 6; minute 1: nothing; minute 2: 10.
    insert(conn, [(1, T0 + 1, 1.0), (1, T0 + 30, 2.0), (1, T0 + 59.9, 6.0), (1, T0 + 120, 10.0), (2, T0, 99.0)])
    page = history.fetch(conn, Query(1, bucket=60, newest_first=False))
    assert [(b.start, b.min, b.mean, b.max, b.count) for b in page.rows] == [
        (T0, 1.0, 3.0, 6.0, 3),
        (T0 + 120, 10.0, 10.0, 10.0, 1),
    ]


def test_bucket_pages_continue_where_the_last_one_ended(db):
    path, conn = db
    insert(conn, [(1, T0 + 60 * m + s, float(m)) for m in range(7) for s in (0, 30)])
    for newest_first in (True, False):
        starts, cursor = [], None
        while True:
            page = history.fetch(conn, Query(1, bucket=60, limit=3, newest_first=newest_first, cursor=cursor))
            assert all(b.count == 2 for b in page.rows)
            starts += [b.start for b in page.rows]
            if (cursor := page.next_cursor) is None:
                break
        assert starts == sorted([T0 + 60 * m for m in range(7)], reverse=newest_first)


def test_history_reads_while_the_writer_holds_a_write_transaction(db):
    path, conn = db
    insert(conn, [(1, T0, 1.0)])
    reader = History(path)

    async def main():
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO readings (sensor_id, ts, value) VALUES (1, ?, 2.0)", (T0 + 1,))
        try:
            # WAL: the reader sees the last committed state at once, without waiting.
            return await asyncio.wait_for(reader.run(history.latest, 1), 2)
        finally:
            conn.commit()

    try:
        assert asyncio.run(main()).value == 1.0
    finally:
        reader.close()


def test_queries_run_on_the_pool_not_on_the_event_loop_thread(db):
    path, conn = db
    reader = History(path)

    def where(conn):
        return threading.current_thread()

    async def main():
        return await reader.run(where)

    try:
        assert asyncio.run(main()).name.startswith("smartanom-history")
    finally:
        reader.close()
