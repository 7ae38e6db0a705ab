"""core/backup.py and `smartanom backup` / `smartanom restore`: a backup taken while the hub
writes is one consistent moment of the database, and restoring it brings back exactly its rows."""

import os
import pty
import sqlite3
import subprocess
import sys
import textwrap
import time

import pytest

from schema_upgrade import database_at, table_rows
from smartanom import schema
from smartanom.testing import HubProcess

COLUMNS = {"readings": ["sensor_id", "ts", "value"], "device_status": ["device_id", "ts", "status", "reason"]}


def smartanom(*args, **kwargs):
    return subprocess.run([sys.executable, "-m", "smartanom.cli", *args], capture_output=True, text=True, timeout=120, **kwargs)


def hub_config(tmp_path, db) -> str:
    path = tmp_path / "hub.yaml"
    path.write_text(textwrap.dedent(f"""
        storage:
          path: {db}
          flush_interval: 0.05
        devices:
          - id: 1
            name: Tank
            sensors: [{{id: 1, type: ph}}, {{id: 2, type: ec}}, {{id: 3, type: temperature}}]
        plugins:
          - platform: simulated
            device: 1
            interval: 0.005
    """))
    return str(path)


def prefilled(db, rows=300_000):
    """A database large enough that its backup takes several steps (about 12 MB)."""
    conn = database_at(db, schema.LATEST)
    with conn:
        conn.executemany("INSERT INTO readings (sensor_id, ts, value) VALUES (?, ?, ?)", ((1 + i % 3, 1.7e9 + i, i / 3) for i in range(rows)))
    conn.close()


def count(db) -> int:
    conn = sqlite3.connect(db)
    try:
        return conn.execute("SELECT count(*) FROM readings").fetchone()[0]
    finally:
        conn.close()


def wait_until(condition, timeout=20.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def all_rows(db) -> dict:
    return {table: table_rows(db, table, columns) for table, columns in COLUMNS.items()}


def run_on_a_terminal(*args) -> tuple[int, str, str]:
    """`smartanom ARGS` with stderr on a pseudo-terminal (where progress is shown)."""
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "smartanom.cli", *args], stdout=subprocess.PIPE, stderr=slave, text=True)
    os.close(slave)
    terminal = b""
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        terminal += chunk
    stdout = proc.stdout.read()
    os.close(master)
    return proc.wait(60), stdout, terminal.decode()


def test_a_backup_taken_under_load_restores_exactly(tmp_path):
    db = tmp_path / "hub.db"
    prefilled(db)
    config = hub_config(tmp_path, db)
    copy = tmp_path / "backup.db"
    with HubProcess(config) as hub:
        start = count(db)
        wait_until(lambda: count(db) > start + 100)  # the simulator's readings are being written
        code, stdout, terminal = run_on_a_terminal("backup", str(copy), "--config", config)
        assert code == 0, terminal
        assert f"Backed up {db} to {copy}" in stdout
        assert "\rBacking up: 100%" in terminal and terminal.count("\rBacking up:") >= 3, terminal
        taken = count(copy)
        wait_until(lambda: count(db) > taken + 100)  # the hub went on writing
        code, _ = hub.stop()
        assert code == 0

    # The copy is one moment of the database: a prefix of what the hub wrote, nothing torn.
    backed_up, live = all_rows(copy), all_rows(db)
    assert sqlite3.connect(copy).execute("PRAGMA quick_check").fetchone()[0] == "ok"
    last = max(backed_up["readings"])
    assert backed_up["readings"] == {i: r for i, r in live["readings"].items() if i <= last}
    assert len(live["readings"]) > len(backed_up["readings"]) > 300_000
    assert sorted(p.name for p in tmp_path.glob("backup*")) == ["backup.db"]  # no -wal, no .partial

    restored = smartanom("restore", str(copy), "--config", config)
    assert restored.returncode == 0, restored.stderr
    assert all_rows(db) == backed_up
    (kept,) = tmp_path.glob("hub.db.before-restore-*")
    assert f"what it held before is kept in {kept}" in restored.stdout
    assert all_rows(kept) == live

    # And the hub runs on the restored database, writing after the restored rows.
    with HubProcess(config) as hub:
        wait_until(lambda: count(db) > len(backed_up["readings"]) + 10)
        hub.stop()
    assert {i: r for i, r in all_rows(db)["readings"].items() if i <= last} == backed_up["readings"]


def test_restore_is_refused_while_a_hub_runs_on_the_database(tmp_path):
    db = tmp_path / "hub.db"
    prefilled(db, rows=10)
    config = hub_config(tmp_path, db)
    copy = tmp_path / "backup.db"
    assert smartanom("backup", str(copy), "--config", config).returncode == 0
    with HubProcess(config):
        refused = smartanom("restore", str(copy), "--config", config)
        assert refused.returncode == 2
        assert f"Restore failed: {db} is in use (a hub is running on it" in refused.stderr
        assert "systemctl stop smartanom" in refused.stderr
        assert count(db) > 10  # untouched: the hub's readings are still there
    assert not list(tmp_path.glob("hub.db.before-restore-*"))


def test_backup_into_a_folder_names_the_file_and_shows_no_progress_off_a_terminal(tmp_path):
    db = tmp_path / "hub.db"
    prefilled(db, rows=10)
    folder = tmp_path / "backups"
    folder.mkdir()
    done = smartanom("backup", str(folder), "--database", str(db))
    assert done.returncode == 0, done.stderr
    (written,) = folder.iterdir()
    assert written.name.startswith("hub-") and written.suffix == ".db"
    assert done.stderr == ""  # no progress line for cron's mail or the journal
    assert count(written) == 10


@pytest.mark.parametrize("problem", ["missing", "not a database", "newer", "not ours"])
def test_restore_refuses_a_file_it_cannot_use_and_changes_nothing(tmp_path, problem):
    db = tmp_path / "hub.db"
    prefilled(db, rows=5)
    bad = tmp_path / "bad.db"
    if problem == "not a database":
        bad.write_text("hello")
    elif problem == "newer":
        conn = database_at(bad, schema.LATEST)
        conn.execute(f"PRAGMA user_version = {schema.LATEST + 1}")
        conn.close()
    elif problem == "not ours":
        sqlite3.connect(bad).execute("CREATE TABLE other (x)").connection.close()
    done = smartanom("restore", str(bad), "--database", str(db))
    assert done.returncode == 2 and "Traceback" not in done.stderr
    expected = {
        "missing": f"{bad}: no such file",
        "not a database": f"{bad} is not a readable SQLite database",
        "newer": f"the database {bad} has schema version {schema.LATEST + 1}",
        "not ours": f"{bad} is not a SmarTanom Hub database",
    }[problem]
    assert expected in done.stderr
    assert count(db) == 5
    assert not list(tmp_path.glob("hub.db.before-restore-*"))


def test_backup_to_a_missing_folder_says_so(tmp_path):
    db = tmp_path / "hub.db"
    prefilled(db, rows=1)
    done = smartanom("backup", str(tmp_path / "nope" / "x.db"), "--database", str(db))
    assert done.returncode == 2
    assert f"{tmp_path / 'nope'} is not a folder; create it first" in done.stderr

def with_read_only_view(folder, view, *args):
    """`smartanom ARGS` while `view` shows `folder` read-only (as ProtectSystem=strict does)."""
    view.mkdir()
    if subprocess.run(["mount", "--bind", str(folder), str(view)]).returncode != 0:
        pytest.skip("cannot bind-mount here")
    try:
        subprocess.run(["mount", "-o", "remount,ro,bind", str(view)], check=True)
        return smartanom(*args)
    finally:
        subprocess.run(["umount", str(view)], check=True)


@pytest.mark.skipif(os.geteuid() != 0, reason="a read-only bind mount (what the backup unit's ProtectSystem=strict makes) needs root")
def test_backup_of_a_stopped_hubs_database_in_a_read_only_folder_says_what_sqlite_needs(tmp_path):
    """With no hub running, a WAL database has no -shm file, and SQLite must create one to read
    it: from a read-only folder (the nightly unit under ProtectSystem=strict, or the timer's
    catch-up run at boot before the hub starts) that is impossible, and the message must say so
    rather than call the database unreadable. (The unit may write there: tests/test_deploy.py.)"""
    data = tmp_path / "data"
    data.mkdir()
    prefilled(data / "hub.db", rows=3)
    assert not (data / "hub.db-shm").exists()
    ro = tmp_path / "ro"
    done = with_read_only_view(data, ro, "backup", str(tmp_path / "copy.db"), "--database", str(ro / "hub.db"))
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "is not a readable SQLite database" not in done.stderr
    assert f"SQLite must create {ro / 'hub.db'}-shm to read it" in done.stderr, done.stderr
    assert f"let this user write in {ro}" in done.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="a read-only bind mount needs root")
def test_restore_onto_a_database_it_cannot_write_does_not_blame_a_running_hub(tmp_path):
    """Leaving WAL mode fails for other reasons than another connection (a read-only file
    system, the wrong user, a full disk): 'stop the hub first' would send the operator the
    wrong way when no hub runs."""
    data = tmp_path / "data"
    data.mkdir()
    prefilled(data / "hub.db", rows=3)
    # A hub killed without closing leaves its -wal and -shm behind.
    subprocess.run([sys.executable, "-c", (
        "import sqlite3, os; c = sqlite3.connect(os.environ['DB']); "
        "c.execute('INSERT INTO readings (sensor_id, ts, value) VALUES (1, 1, 1)'); c.commit(); os._exit(0)"
    )], env={**os.environ, "DB": str(data / "hub.db")}, check=True)
    assert (data / "hub.db-wal").exists()
    backup = tmp_path / "backup.db"
    prefilled(backup, rows=2)
    ro = tmp_path / "ro"
    done = with_read_only_view(data, ro, "restore", str(backup), "--database", str(ro / "hub.db"))
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "stop the hub first" not in done.stderr, done.stderr
    assert f"cannot restore {backup} to {ro / 'hub.db'}: " in done.stderr, done.stderr
    assert f"may this user write in {ro}" in done.stderr
    assert count(data / "hub.db") == 4
