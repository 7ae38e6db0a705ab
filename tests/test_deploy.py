"""deploy/systemd/: the units pass `systemd-analyze verify` and keep the promises
docs/install-pi.md makes (user, groups, paths, restarts, a stop within the timeout)."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from smartanom import hub

ROOT = Path(__file__).resolve().parent.parent
UNITS = ROOT / "deploy" / "systemd"
INSTALLED = "/opt/smartanom/bin/smartanom"


def directives(unit: Path) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in unit.read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, value = line.split("=", 1)
            found.setdefault(key.strip(), []).append(value.strip())
    return found


def test_units_pass_systemd_analyze_verify(tmp_path):
    tool = shutil.which("systemd-analyze")
    if tool is None:
        if os.environ.get("CI"):
            pytest.fail("systemd-analyze is missing: in CI the unit check must run (.ci/run installs systemd)")
        pytest.skip("systemd-analyze is not installed (apt-get install systemd)")
    # verify checks that ExecStart= exists: point it at this environment's smartanom.
    here = str(Path(sys.executable).parent / "smartanom")
    assert os.access(here, os.X_OK), f"{here} is missing: pip install the project first"
    for unit in UNITS.iterdir():
        (tmp_path / unit.name).write_text(unit.read_text().replace(INSTALLED, here))
    done = subprocess.run([tool, "verify", *sorted(str(p) for p in tmp_path.iterdir())], capture_output=True, text=True, timeout=120)
    # verify exits 0 even for an unknown key or a bad value, so any word about our files is a failure.
    ours = [line for line in (done.stdout + done.stderr).splitlines() if "smartanom" in line]
    assert done.returncode == 0 and not ours, done.stdout + done.stderr


def test_the_service_runs_as_a_dialout_user_with_etc_and_var_lib():
    unit = directives(UNITS / "smartanom.service")
    assert unit["User"] == ["smartanom"] and unit["SupplementaryGroups"] == ["dialout"]
    assert unit["ExecStart"] == [f"{INSTALLED} run --config /etc/smartanom/smartanom.yaml"]
    assert unit["StateDirectory"] == ["smartanom"] and unit["WorkingDirectory"] == ["/var/lib/smartanom"]
    assert unit["ConfigurationDirectory"] == ["smartanom"]
    assert unit["Restart"] == ["on-failure"] and unit["RestartPreventExitStatus"] == ["2"]
    # Serial ports stay reachable: no private /dev, no device allow-list, no user namespace.
    assert "PrivateDevices" not in unit and "DevicePolicy" not in unit and "PrivateUsers" not in unit
    assert unit["ProtectSystem"] == ["strict"] and unit["NoNewPrivileges"] == ["yes"]


def test_a_clean_stop_fits_in_the_units_stop_timeout():
    timeout = float(directives(UNITS / "smartanom.service")["TimeoutStopSec"][0])
    # Plugins get STOP_TIMEOUT, clients CLOSE_GRACE; storage's last flush needs a moment more.
    assert timeout >= hub.STOP_TIMEOUT + hub.CLOSE_GRACE + 10


def test_the_backup_timer_runs_smartanom_backup_daily():
    service = directives(UNITS / "smartanom-backup.service")
    assert service["ExecStart"][0].startswith(f"{INSTALLED} backup /var/backups/smartanom --config /etc/smartanom/smartanom.yaml")
    assert service["ReadWritePaths"] == ["/var/backups/smartanom /var/lib/smartanom"]
    timer = directives(UNITS / "smartanom-backup.timer")
    assert timer["Persistent"] == ["true"] and timer["OnCalendar"]
