"""core/logsetup.py: under systemd (JOURNAL_STREAM names our stderr) log lines carry a
syslog <N> level prefix and no timestamp of their own; elsewhere they keep their time."""

import logging
import os
import re
import signal
import subprocess
import sys
import tempfile
import textwrap
import time

from smartanom.logsetup import JournalFormatter
from smartanom.testing import free_port

CONFIG = """
storage:
  path: {db}
devices:
  - id: 1
    name: Tank
    sensors: [{{id: 1, type: ph}}]
"""


def run_hub(tmp_path, journal: str | None) -> list[str]:
    """`smartanom run` until it serves, then SIGTERM; its log lines. `journal` is
    'match' (JOURNAL_STREAM names its stderr, as systemd sets it), 'other', or None."""
    config = tmp_path / "hub.yaml"
    config.write_text(textwrap.dedent(CONFIG.format(db=tmp_path / "hub.db")))
    with tempfile.TemporaryFile(mode="w+") as out:
        env = {k: v for k, v in os.environ.items() if k != "JOURNAL_STREAM"}
        info = os.fstat(out.fileno())
        if journal == "match":
            env["JOURNAL_STREAM"] = f"{info.st_dev}:{info.st_ino}"
        elif journal == "other":
            env["JOURNAL_STREAM"] = f"{info.st_dev}:{info.st_ino + 1}"
        # Auth off on all interfaces: the hub warns, so there is a WARNING line too.
        proc = subprocess.Popen(
            [sys.executable, "-m", "smartanom.cli", "run", "--config", str(config), "--host", "0.0.0.0", "--port", str(free_port())],
            stdout=out, stderr=out, env=env,
        )
        deadline = time.monotonic() + 20
        while True:
            out.seek(0)
            if "Serving on" in out.read():
                break
            assert proc.poll() is None and time.monotonic() < deadline, "the hub did not start"
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
        out.seek(0)
        return out.read().splitlines()


def test_under_journald_lines_have_a_level_prefix_and_no_timestamp(tmp_path):
    lines = run_hub(tmp_path, "match")
    assert lines and all(re.match(r"<[2-7]>smartanom[.\w]*: ", line) for line in lines), lines
    assert not any(re.search(r"\d\d:\d\d:\d\d", line.split(": ", 1)[0]) for line in lines)
    assert any(line.startswith("<4>smartanom: Auth is off") for line in lines)
    assert any(line.startswith("<6>smartanom: Serving on") for line in lines)


def test_elsewhere_lines_keep_their_time(tmp_path):
    for journal in (None, "other"):  # 'other': JOURNAL_STREAM inherited, but stderr was redirected
        lines = run_hub(tmp_path, journal)
        assert all(re.match(r"\d\d:\d\d:\d\d (INFO|WARNING|ERROR|DEBUG) +smartanom", line) for line in lines), lines


def test_every_line_of_a_traceback_keeps_the_error_level():
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.LogRecord("smartanom.hub", logging.ERROR, __file__, 1, "Plugin instance crashed", None, sys.exc_info())
    lines = JournalFormatter("%(name)s: %(message)s").format(record).splitlines()
    assert lines[0] == "<3>smartanom.hub: Plugin instance crashed"
    assert len(lines) > 3 and all(line.startswith("<3>") for line in lines)
    assert lines[-1] == "<3>ValueError: boom"


def test_under_journald_what_the_command_prints_on_failure_is_an_error(tmp_path):
    config = tmp_path / "bad.yaml"
    config.write_text("devices:\n  - {id: 1, name: Tank, sensors: [{id: 1, type: phh}]}\n")
    with tempfile.TemporaryFile(mode="w+") as out:
        info = os.fstat(out.fileno())
        env = {**os.environ, "JOURNAL_STREAM": f"{info.st_dev}:{info.st_ino}"}
        done = subprocess.run([sys.executable, "-m", "smartanom.cli", "run", "--config", str(config)], stdout=out, stderr=out, env=env, timeout=60)
        out.seek(0)
        lines = out.read().splitlines()
    assert done.returncode == 2
    assert lines[0] == "<3>Configuration error:"
    assert lines[1].startswith(f"<3>  {config}, line 2: devices[0].sensors[0].type: 'phh' is not a known sensor type")
    assert all(line.startswith("<3>") for line in lines)
