"""Nothing accepted is lost: `smartanom run` as a real process, stopped and killed under load.

Each test starts the hub's command on a free port, sends readings over a
WebSocket, and counts: a reading is accepted when its sensor_data_update comes
back, and the database must hold what the hub accepted (SIGTERM), or all but
the last flush interval of it (kill -9), and stay intact.
"""

import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import websocket  # websocket-client: a plain blocking client, in threads

SMARTANOM = str(Path(sys.executable).parent / "smartanom")
FLUSH = 0.5

CONFIG = """
devices:
  - id: 1
    name: Tank
    offline_after: 3600
    sensors:
      - {{id: 1, type: ph}}
server:
  rate_limit: null
storage:
  path: {db}
  flush_interval: {flush}
  max_pending: {max_pending}
{extra}"""


class HubProcess:
    """`smartanom run` in a subprocess; its log is collected by a thread."""

    def __init__(self, tmp_path: Path, db: Path, *, max_pending: int = 100_000, prefix: list[str] = (), cwd=None, extra: str = ""):
        config = tmp_path / "hub.yaml"
        config.write_text(CONFIG.format(db=db, flush=FLUSH, max_pending=max_pending, extra=extra))
        self.log: list[str] = []
        self.proc = subprocess.Popen(
            [*prefix, SMARTANOM, "run", "--config", str(config), "--port", "0"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=cwd or tmp_path,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.port = int(self.wait_for_log(r"Serving on http://127\.0\.0\.1:(\d+)", 30).group(1))

    def _read(self):
        for line in self.proc.stdout:
            self.log.append(line)

    def wait_for_log(self, pattern: str, timeout: float):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.log):
                match = re.search(pattern, line)
                if match:
                    return match
            if self.proc.poll() is not None and not self._reader.is_alive():
                break
            time.sleep(0.05)
        raise AssertionError(f"no log line matching {pattern!r}; log:\n{''.join(self.log)}")

    def health(self) -> tuple[int, dict]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/api/health", timeout=10) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())

    def stop(self, sig=signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        code = self.proc.wait(timeout=60)
        self._reader.join(timeout=10)
        return code


class Sender:
    """Sends readings 0, 1, 2, ... on one connection; a thread records each acknowledgement's arrival."""

    def __init__(self, port: int, pause: float = 0.0):
        self.ws = websocket.create_connection(f"ws://127.0.0.1:{port}/ws/sensor-data/", timeout=30)
        self.pause = pause
        self.sent = 0
        self.acked: dict[int, float] = {}  # value -> monotonic time the broadcast came back
        self.close_code = None
        self.receive_error = None
        self.overloaded = 0  # readings the hub refused (not accepted, so nothing to store)
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._send, daemon=True), threading.Thread(target=self._receive, daemon=True)]
        for t in self._threads:
            t.start()

    def _send(self):
        try:
            while not self._stop.is_set():
                self.ws.send(json.dumps({"type": "sensor_data", "sensor_id": 1, "value": float(self.sent)}))
                self.sent += 1
                if self.pause:
                    time.sleep(self.pause)
                elif self.sent - len(self.acked) > 2000:
                    time.sleep(0.01)  # stay a steady load, not an unbounded backlog
        except (websocket.WebSocketException, OSError):
            pass

    def _receive(self):
        try:
            while True:
                opcode, data = self.ws.recv_data(control_frame=False)
                if opcode == websocket.ABNF.OPCODE_CLOSE:
                    self.close_code = int.from_bytes(data[:2], "big") if len(data) >= 2 else None
                    return
                message = json.loads(data)
                if message["type"] == "sensor_data_update":
                    self.acked[int(message["value"])] = time.monotonic()
                elif message.get("code") == "OVERLOADED":
                    self.overloaded += 1
        except (websocket.WebSocketException, OSError, ValueError) as exc:
            self.receive_error = exc

    def finish(self, timeout: float = 30):
        self._threads[1].join(timeout)
        self._stop.set()
        self._threads[0].join(timeout)
        self.ws.close()


def stored_values(db: Path) -> list[int]:
    conn = sqlite3.connect(db)
    try:
        return [int(v) for (v,) in conn.execute("SELECT value FROM readings ORDER BY id")]
    finally:
        conn.close()


def integrity(db: Path) -> str:
    conn = sqlite3.connect(db)
    try:
        return conn.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        conn.close()


def until(condition, timeout: float, what: str) -> None:
    # Wait for a condition rather than a fixed time: a slow CI machine only takes longer.
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_sigterm_under_load_stores_every_accepted_reading(tmp_path):
    db = tmp_path / "hub.db"
    hub = HubProcess(tmp_path, db)
    sender = Sender(hub.port)
    until(lambda: len(sender.acked) > 100, 30, "load to reach the hub")
    assert hub.stop(signal.SIGTERM) == 0
    sender.finish()

    assert sender.close_code == 1001, sender.receive_error  # "hub shutting down", after every acknowledgement
    stored = stored_values(db)
    assert sorted(stored) == sorted(sender.acked), (len(stored), len(sender.acked))
    accepted = hub.wait_for_log(r"Storage closed: (\d+) readings accepted, (\d+) stored, (\d+) dropped", 1)
    assert accepted.groups() == (str(len(stored)), str(len(stored)), "0")
    assert integrity(db) == "ok"


def test_kill_9_loses_at_most_the_flush_interval_and_never_corrupts(tmp_path):
    db = tmp_path / "hub.db"
    hub = HubProcess(tmp_path, db)
    sender = Sender(hub.port, pause=0.002)
    until(lambda: len(sender.acked) > 300, 30, "load to reach the hub")
    time.sleep(2 * FLUSH + 0.5)  # a few flushes under load before the kill
    killed_at = time.monotonic()
    hub.stop(signal.SIGKILL)
    sender.finish()

    assert integrity(db) == "ok"
    stored = set(stored_values(db))
    assert stored <= set(range(sender.sent))  # nothing invented
    lost = {value: at for value, at in sender.acked.items() if value not in stored}
    # Everything acknowledged more than one flush interval before the kill is on disk
    # (with a second's grace for a busy shared machine: this is behaviour, not a benchmark).
    too_old = {v: round(killed_at - at, 3) for v, at in lost.items() if killed_at - at > FLUSH + 1.0}
    assert not too_old, f"lost readings acknowledged long before the kill: {sorted(too_old.items())[:5]}"
    assert len(stored) > 100


CLOSED = r"Storage closed: (\d+) readings accepted, (\d+) stored, (\d+) dropped, (\d+) saved for the next start, (\d+) imported"


def test_a_full_disk_is_reported_and_refuses_before_anything_accepted_is_lost(tmp_path):
    # The kernel refuses writes past 512 kB in this process tree (ulimit -f), as a full disk would.
    db = tmp_path / "hub.db"
    prefix = ["bash", "-c", 'ulimit -f 512 && trap "" XFSZ && exec "$@"', "limited"]
    hub = HubProcess(tmp_path, db, max_pending=500, prefix=prefix)
    sender = Sender(hub.port, pause=0.001)
    hub.wait_for_log(r"STORAGE FAILING", 60)
    until(lambda: sender.overloaded > 0, 30, "the hub to refuse readings (OVERLOADED)")
    # (SQLite may win back WAL space now and then, so storage can be briefly writable again.)
    seen = []
    until(lambda: seen.append(hub.health()) or seen[-1][0] == 503, 30, "health to say degraded")
    code, health = seen[-1]
    assert health["storage"]["ok"] is False and health["status"] == "degraded"
    counts = health["readings"]
    assert counts["dropped"] == 0 and counts["pending"] <= 500
    assert hub.proc.poll() is None

    assert hub.stop(signal.SIGTERM) == 0
    sender.finish()
    final = hub.wait_for_log(CLOSED, 1)
    accepted, stored, dropped, saved, _ = map(int, final.groups())
    assert accepted == len(sender.acked)  # every accepted reading was broadcast
    # Each was stored or saved (the last flush may still fit: SQLite can reuse freed WAL space).
    assert dropped == 0 and accepted == stored + saved
    assert stored == len(stored_values(db))
    assert integrity(db) == "ok"


def _mount_tmpfs(where: Path, size: str) -> None:
    where.mkdir()
    if shutil.which("mount") is None:
        pytest.skip("no mount command: cannot make a small file system")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip() or done.returncode}); needs root or CAP_SYS_ADMIN")


def _fill(folder: Path) -> Path:
    """Write a file until the file system is full (unbuffered, so nothing is left to fail at close)."""
    filler = folder / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for size in (65536, 512):
            while True:
                try:
                    os.write(fd, b"\0" * size)
                except OSError:
                    break
    finally:
        os.close(fd)
    return filler


def test_a_stop_on_a_full_disk_saves_what_it_holds_and_the_next_start_imports_it(tmp_path):
    small = tmp_path / "small"
    _mount_tmpfs(small, "2m")
    try:
        db = small / "hub.db"
        hub = HubProcess(tmp_path, db, max_pending=2000)
        sender = Sender(hub.port, pause=0.002)
        until(lambda: hub.health()[1]["readings"]["stored"] > 200, 30, "readings to reach the database")
        filler = _fill(small)
        hub.wait_for_log(r"STORAGE FAILING", 60)
        until(lambda: sender.overloaded > 0, 60, "the hub to refuse readings once memory holds most of max_pending")
        assert hub.stop(signal.SIGTERM) == 0
        sender.finish()
        accepted, stored, dropped, saved, _ = map(int, hub.wait_for_log(CLOSED, 1).groups())
        assert accepted == len(sender.acked) and dropped == 0 and saved > 0
        assert accepted == stored + saved
        hub.wait_for_log(r"could not be written to .*: saved to .*hub\.db\.recovery", 1)

        filler.unlink()  # the operator frees space and starts the hub again
        again = HubProcess(tmp_path, db, max_pending=2000)
        again.wait_for_log(rf"Importing {saved} readings that the last stop could not write", 10)
        again.wait_for_log(rf"Imported {saved} readings from", 30)
        assert again.stop(signal.SIGTERM) == 0
        final = again.wait_for_log(CLOSED, 1)
        assert int(final.group(5)) == saved and int(final.group(3)) == 0

        values = stored_values(db)
        lost = set(sender.acked) - set(values)
        assert not lost, f"{len(lost)} acknowledged readings lost across the full-disk stop"
        print(f"full-disk stop: {len(sender.acked)} acknowledged, {stored} written before the stop, {saved} saved and imported, {len(lost)} lost, {sender.overloaded} refused")
        assert len(values) == len(set(values)) == len(sender.acked)  # none twice, none invented
        assert integrity(db) == "ok"
        # A third start imports nothing again.
        third = HubProcess(tmp_path, db, max_pending=2000)
        assert third.stop(signal.SIGTERM) == 0
        assert int(third.wait_for_log(CLOSED, 1).group(5)) == 0
        assert len(stored_values(db)) == len(sender.acked)
    finally:
        subprocess.run(["umount", "-l", str(small)], capture_output=True)


def test_a_read_only_database_is_reported_and_refuses_instead_of_dropping(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    db = data / "hub.db"
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE keep (x)")
    conn.close()
    db.chmod(0o444)
    data.chmod(0o555)
    prefix = []
    if os.geteuid() == 0:
        # Root ignores file modes; without CAP_DAC_OVERRIDE it obeys them like anyone else.
        if shutil.which("setpriv") is None:
            pytest.skip("needs setpriv (util-linux) to run the hub as root without CAP_DAC_OVERRIDE")
        prefix = ["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--"]
    try:
        # The database's folder is read-only, so the recovery file goes elsewhere.
        recovery = tmp_path / "recovery.bin"
        hub = HubProcess(tmp_path, db, max_pending=200, prefix=prefix, extra=f"  recovery_path: {recovery}\n")
        hub.wait_for_log(r"STORAGE FAILING: cannot (open|write) .*hub\.db", 30)
        sender = Sender(hub.port, pause=0.002)
        until(lambda: len(sender.acked) >= 150 and sender.overloaded > 0, 30, "live readings, then refusals")
        code, health = hub.health()
        assert code == 503 and health["storage"]["ok"] is False
        assert health["readings"]["stored"] == 0 and health["readings"]["dropped"] == 0
        assert hub.stop(signal.SIGTERM) == 0
        sender.finish()
        accepted, stored, dropped, saved, _ = map(int, hub.wait_for_log(CLOSED, 1).groups())
        assert accepted == len(sender.acked) and stored == 0 and dropped == 0 and saved == accepted
    finally:
        data.chmod(0o755)
        db.chmod(0o644)
    assert integrity(db) == "ok"
