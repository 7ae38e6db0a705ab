"""core/cli.py: the `smartanom` command as an installer uses it."""

import json
import signal
import socket
import sqlite3
import subprocess
import sys
import textwrap
import urllib.request

import pytest

from smartanom.testing import HubProcess, free_port


def smartanom(*args, **kwargs):
    return subprocess.run([sys.executable, "-m", "smartanom.cli", *args], capture_output=True, text=True, timeout=60, **kwargs)


def write_config(tmp_path, extra="") -> str:
    path = tmp_path / "hub.yaml"
    path.write_text(
        textwrap.dedent(
            f"""
            storage:
              path: {tmp_path / "hub.db"}
              flush_interval: 0.2
            devices:
              - id: 1
                name: Tank
                sensors: [{{id: 1, type: ph}}, {{id: 2, type: ec}}]
            plugins:
              - platform: simulated
                device: 1
                interval: 0.1
            """
        )
        + extra
    )
    return str(path)


def test_check_config_accepts_the_shipped_config():
    result = smartanom("check-config", "config/smartanom.yaml")
    assert result.returncode == 0, result.stderr
    assert "OK (2 devices, 8 sensors, 2 plugin instances)" in result.stdout


def test_check_config_reports_errors_with_lines_and_no_traceback(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("devices:\n  - id: 1\n    name: Tank\n    sensors:\n      - {id: 1, type: phh}\n  - {id: x, name: B}\n")
    result = smartanom("check-config", str(path))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert f"{path}, line 5: devices[0].sensors[0].type: 'phh' is not a known sensor type" in result.stderr
    assert f"{path}, line 6: devices[1].id: Input should be a valid integer (found: 'x')" in result.stderr


def test_plugins_lists_the_builtin_simulator():
    result = smartanom("plugins")
    assert result.returncode == 0
    assert any(line.split()[:4] == ["simulated", "smartanom", "0.1.0", "simulated"] for line in result.stdout.splitlines())


def test_run_serves_logs_what_it_loaded_and_stops_cleanly_on_sigterm(tmp_path):
    with HubProcess(write_config(tmp_path)) as hub:
        with urllib.request.urlopen(f"{hub.url}/api/devices", timeout=5) as response:
            devices = json.load(response)["devices"]
        assert devices[0]["name"] == "Tank" and len(devices[0]["sensors"]) == 2
        with urllib.request.urlopen(f"{hub.url}/websocket-test/", timeout=5) as response:
            assert response.headers["Content-Type"].startswith("text/html")
        code, output = hub.stop(signal.SIGTERM)
    assert code == 0, output
    assert "1 device, 2 sensors" in output
    assert "plugin instance simulated#0: platform simulated, device 1" in output
    assert f"open {hub.url}/ in a browser for the dashboard" in output
    assert "Stopped" in output
    conn = sqlite3.connect(tmp_path / "hub.db")
    assert conn.execute("SELECT count(*) FROM readings").fetchone()[0] > 0
    conn.close()


def test_sigint_stops_cleanly_too(tmp_path):
    with HubProcess(write_config(tmp_path)) as hub:
        code, output = hub.stop(signal.SIGINT)
    assert code == 0 and "Traceback" not in output


def test_busy_port_is_a_clear_error(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = smartanom("run", "--config", write_config(tmp_path), "--port", str(port))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert f"127.0.0.1:{port}" in result.stderr and "--port" in result.stderr


def test_missing_config_file_says_how_to_point_at_one(tmp_path):
    result = smartanom("run", "--config", str(tmp_path / "none.yaml"))
    assert result.returncode == 2 and "file not found" in result.stderr


def test_log_level_works_after_the_subcommand_and_bad_levels_are_refused(tmp_path):
    result = smartanom("check-config", "--log-level", "debug", "config/smartanom.yaml")
    assert result.returncode == 0, result.stderr
    bad = smartanom("run", "--log-level", "verbose")
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert "'verbose' is not one of DEBUG, INFO, WARNING, ERROR" in bad.stderr


@pytest.mark.parametrize("port", ["99999", "-5", "http"])
def test_port_out_of_range_is_refused(port):
    result = smartanom("run", "--port", port)
    assert result.returncode == 2 and "is not a port number (0-65535" in result.stderr


def test_host_that_is_not_ours_is_explained(tmp_path):
    result = smartanom("run", "--config", write_config(tmp_path), "--host", "192.0.2.1", "--port", "0")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "192.0.2.1 is not an address of this machine" in result.stderr


def test_check_config_warns_about_a_config_that_defines_nothing(tmp_path):
    path = tmp_path / "empty.yaml"
    path.write_text("# everything commented out\ndevices:\n")
    result = smartanom("check-config", str(path))
    assert result.returncode == 0
    assert "defines no devices" in result.stderr


def test_listening_on_all_interfaces_names_the_addresses_and_warns_when_auth_is_off(tmp_path):
    config = write_config(tmp_path)
    with HubProcess(config) as hub:
        quiet = hub.output
    assert "Auth is off" not in quiet  # 127.0.0.1: only this machine
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "smartanom.cli", "run", "--config", config, "--host", "0.0.0.0", "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if "Serving on" in line:
                break
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=20)
    output = "".join(lines)
    assert "Listening on all interfaces" in output
    assert "WARNING" in output and "Auth is off and the hub listens on all interfaces" in output


def test_check_config_warns_about_a_tokens_file_others_can_read(tmp_path):
    secrets = tmp_path / "secrets.yaml"
    secrets.write_text("tokens:\n  - {name: tablet, role: read, token: a-long-enough-read-token-1234}\n")
    secrets.chmod(0o644)
    config = write_config(tmp_path, "auth:\n  enabled: true\n  tokens_file: secrets.yaml\n")
    loose = smartanom("check-config", config)
    assert loose.returncode == 0, loose.stderr
    assert f"chmod 600 {secrets}" in loose.stderr
    secrets.chmod(0o600)
    assert "chmod 600" not in smartanom("check-config", config).stderr


def test_check_config_warns_when_a_flush_interval_does_not_fit_under_max_pending(tmp_path):
    # The config: 150 readings/s with flush_interval 5 is 750 readings a flush; max_pending is 500.
    path = write_config(tmp_path, "")
    text = open(path).read().replace("flush_interval: 0.2", "flush_interval: 5\n  max_pending: 500").replace("interval: 0.1", "interval: 0.01333")
    open(path, "w").write(text)
    result = smartanom("check-config", path)
    assert result.returncode == 0, result.stderr
    assert "storage.flush_interval 5 s" in result.stderr and "more than storage.max_pending (500" in result.stderr
    # The shipped defaults at the same rate fit.
    open(path, "w").write(text.replace("flush_interval: 5\n  max_pending: 500", "flush_interval: 0.5"))
    assert "max_pending" not in smartanom("check-config", path).stderr
