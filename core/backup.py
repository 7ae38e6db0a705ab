"""Consistent copies of the database, taken while the hub runs, and putting one back.

Never copy a live database file with `cp`: in WAL mode the newest transactions
live in the `-wal` file, and a copy taken mid-write can be torn. SQLite's online
backup API copies page by page under a read transaction that it holds from the
first page to the last, so the copy is the database as it was at one moment,
while the hub's writer goes on appending to the WAL (readers never block it in
WAL mode).

`smartanom backup PATH` and `smartanom restore BACKUP` (core/cli.py) call
`backup()` and `restore()`; the schema upgrade (core/schema.py) keeps its
copy of the old database with `copy_database()`.
"""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path
from typing import Callable

from smartanom import schema

# Pages copied per backup step (4 MiB at SQLite's default page size): small enough
# for a smooth progress line, large enough not to slow the copy down.
STEP_PAGES = 1024

Progress = Callable[[int, int], None]  # (pages copied, pages in all)


class BackupError(Exception):
    """A backup or restore that cannot be done; the message says why and what to do."""


def copy_database(source: sqlite3.Connection, dest: Path, progress: Progress | None = None) -> None:
    """Write a consistent copy of `source`'s database to `dest` (replaced atomically).

    The copy is a self-contained file (rollback journal, not WAL) and passes
    SQLite's quick_check before it takes the name `dest`; until then it is
    `dest.partial`, so an interrupted backup never leaves a file that looks complete.
    """
    partial = dest.with_name(dest.name + ".partial")
    partial.unlink(missing_ok=True)
    target = sqlite3.connect(str(partial))
    try:
        # One read transaction across every step: the copy is one moment's
        # database even while the hub's writer commits, and the backup never
        # restarts because of those commits (it would, step by step, on a busy hub).
        source_was_idle = not source.in_transaction
        if source_was_idle:
            source.execute("BEGIN")
            source.execute("SELECT count(*) FROM sqlite_master").fetchone()
        try:
            source.backup(target, pages=STEP_PAGES, progress=_relay(progress))
        finally:
            if source_was_idle:
                source.rollback()
        target.execute("PRAGMA journal_mode=DELETE")
        problem = target.execute("PRAGMA quick_check").fetchone()[0]
        if problem != "ok":
            raise sqlite3.DatabaseError(f"the copy fails SQLite's quick_check: {problem}")
    except BaseException:
        target.close()
        partial.unlink(missing_ok=True)
        raise
    target.close()
    os.replace(partial, dest)
    _sync_directory(dest.parent)


def backup(database: Path, dest: Path, progress: Progress | None = None) -> Path:
    """`smartanom backup`: copy the (possibly live) database to `dest`, or into it if it is a folder."""
    if dest.is_dir():
        dest = dest / f"{database.stem}-{time.strftime('%Y%m%dT%H%M%S')}.db"
    if not dest.parent.is_dir():
        raise BackupError(f"{dest.parent} is not a folder; create it first (mkdir -p {dest.parent})")
    source = _open_existing(database)
    try:
        copy_database(source, dest, progress)
    except (sqlite3.Error, OSError) as exc:
        raise BackupError(f"cannot back up {database} to {dest}: {exc}") from exc
    finally:
        source.close()
    return dest


def restore(backup_file: Path, database: Path, progress: Progress | None = None) -> Path | None:
    """`smartanom restore`: make `database` hold exactly what `backup_file` holds.

    Refused while any program (a running hub) has the database open. What the
    database held before is kept aside first; its name is returned (None if
    there was no database yet). The backup may be from an older release (the
    hub upgrades it at start), never from a newer one.
    """
    _check_backup(backup_file)
    source = _open_existing(backup_file)
    try:
        if not database.exists():
            database.parent.mkdir(parents=True, exist_ok=True)
            copy_database(source, database, progress)
            return None
        live = _open_unused(database)
        try:
            kept = Path(f"{database}.before-restore-{time.strftime('%Y%m%dT%H%M%S')}")
            copy_database(live, kept)
            # Written through SQLite under its rollback journal: a restore cut
            # short by a power failure leaves the previous database, not half of each.
            source.backup(live, pages=STEP_PAGES, progress=_relay(progress))
        finally:
            live.close()
        return kept
    except (sqlite3.Error, OSError) as exc:
        raise BackupError(
            f"cannot restore {backup_file} to {database}: {exc} (may this user write in {database.parent}, "
            "and has the disk room for a second copy?)"
        ) from exc
    finally:
        source.close()


def _check_backup(path: Path) -> None:
    conn = _open_existing(path, read_only=True)
    try:
        if conn.execute("PRAGMA quick_check").fetchone()[0] != "ok":
            raise BackupError(f"{path} is damaged (SQLite's quick_check fails); choose another backup")
        found = schema.version(conn)
        if found > schema.LATEST:
            raise BackupError(schema.too_new_message(path, found))
        if not conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'readings'").fetchone():
            raise BackupError(f"{path} is not a SmarTanom Hub database (it has no readings table)")
    except sqlite3.DatabaseError as exc:
        raise BackupError(f"{path} is not a readable SQLite database: {exc}") from exc
    finally:
        conn.close()


def _open_existing(path: Path, read_only: bool = False) -> sqlite3.Connection:
    # mode=rw/ro: a mistyped path is an error, not a new empty database.
    if not path.is_file():
        raise BackupError(f"{path}: no such file")
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode={'ro' if read_only else 'rw'}", uri=True)
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.Error as exc:
        if _needs_shm(path):
            raise BackupError(
                f"cannot open {path} ({exc}): it is in WAL mode and no hub has it open, so SQLite must create "
                f"{path}-shm to read it; let this user write in {path.parent} (the backup unit's ReadWritePaths)"
            ) from exc
        raise BackupError(f"{path} is not a readable SQLite database: {exc}") from exc
    return conn


def _needs_shm(path: Path) -> bool:
    """A WAL database (file format bytes 18-19 are 2) without its -shm file, in a folder we cannot write."""
    try:
        with path.open("rb") as f:
            header = f.read(20)
    except OSError:
        return False
    shm = Path(f"{path}-shm")
    return header[18:20] == b"\x02\x02" and not shm.exists() and not os.access(path.parent, os.W_OK)


def _open_unused(path: Path) -> sqlite3.Connection:
    """A connection to `path`, proven to be the only one.

    Leaving WAL mode needs every other connection closed; SQLite refuses at once
    (busy timeout 0) while a hub, or anyone else, has the database open.
    """
    conn = _open_existing(path)
    conn.execute("PRAGMA busy_timeout=0")
    try:
        mode = conn.execute("PRAGMA journal_mode=DELETE").fetchone()[0]
    except sqlite3.OperationalError as exc:
        if exc.sqlite_errorcode & 0xFF not in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
            # Not another connection: a read-only file system, the wrong user, a full disk.
            conn.close()
            raise
        mode = "wal"
    if mode.lower() == "wal":
        conn.close()
        raise BackupError(
            f"{path} is in use (a hub is running on it, or another program has it open); "
            "stop the hub first (sudo systemctl stop smartanom), then restore"
        )
    return conn


def _relay(progress: Progress | None):
    if progress is None:
        return None
    return lambda status, remaining, total: progress(total - remaining, total)


def _sync_directory(folder: Path) -> None:
    # The rename is durable only once the folder itself is on disk.
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
