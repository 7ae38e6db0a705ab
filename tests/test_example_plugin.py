"""examples/smartanom-example-plugin, pip-installed, works through the hub by
its entry point alone: in the test fixtures, under `smartanom run`, and with
its own test suite using the fixtures the smartanom package ships."""

import json
import os
import queue
import re
import signal
import subprocess
import sys
import sysconfig
import threading
from pathlib import Path

import pytest
import websocket  # websocket-client: a plain blocking client, as a user's script would use

from conftest import EXAMPLE_PLUGIN

SMARTANOM = str(Path(sys.executable).parent / "smartanom")

CONFIG = """
devices:
  - id: 1
    name: Tank
    sensors:
      - {id: 10, type: water_temperature}
plugins:
  - platform: random_walk
    device: 1
    sensor: 10
    start: 22.0
    step: 0.5
    low: 21.0
    high: 23.0
    interval: 0.05
"""


def test_the_example_is_installed_in_a_temporary_folder_not_in_the_environment(example_plugin):
    # A later `make run` in this .venv must not load a plugin the user never installed.
    installed = Path(example_plugin.locate_file("smartanom_example")).resolve()
    assert installed.is_dir() and not installed.is_relative_to(Path(sys.prefix).resolve())
    listed = subprocess.run(
        [sys.executable, "-m", "pip", "list", "--format=freeze", "--path", sysconfig.get_paths()["purelib"]],
        capture_output=True, text=True, check=True,
    ).stdout
    assert "smartanom-example-plugin" not in listed


@pytest.mark.gen_test
async def test_readings_of_the_installed_example_reach_a_websocket_client(example_plugin, hub_factory, ws_client):
    hub = await hub_factory(CONFIG)
    record = hub.plugins.records["example"]
    assert (record.package, record.version, record.platforms) == ("smartanom-example-plugin", "0.1.0", ["random_walk"])
    client = await ws_client(hub, "/ws/sensor-data/")
    values = [(await client.receive(type="sensor_data_update"))["value"] for _ in range(5)]
    assert all(21.0 <= v <= 23.0 for v in values)
    assert all(abs(b - a) <= 0.5 + 1e-9 for a, b in zip(values, values[1:]))  # a walk, not jumps
    assert len(set(values)) > 1
    assert hub.status.of(1) == "active"


def test_smartanom_run_serves_the_example_plugins_readings(example_plugin, tmp_path):
    config = tmp_path / "hub.yaml"
    config.write_text(CONFIG + f"storage:\n  path: {tmp_path / 'hub.db'}\n")
    hub = subprocess.Popen([SMARTANOM, "run", "--config", str(config), "--port", "0"], stderr=subprocess.PIPE, text=True)
    lines: queue.Queue = queue.Queue()
    # One reader for the whole log, so that no line is lost between phases.
    threading.Thread(target=lambda: [lines.put(line) for line in hub.stderr] + [lines.put(None)], daemon=True).start()
    log = []
    try:
        while (line := lines.get(timeout=30)) is not None:
            log.append(line)
            if served := re.search(r"Serving on (http://\S+):", line):
                break
        assert served, "".join(log)
        client = websocket.create_connection(served.group(1).replace("http", "ws", 1) + "/ws/sensor/10/", timeout=10)
        while (reading := json.loads(client.recv()))["type"] != "sensor_data_update":
            pass
        client.close()
        assert reading["device_name"] == "Tank"
    finally:
        hub.send_signal(signal.SIGINT)
        assert hub.wait(timeout=30) == 0
    while (line := lines.get(timeout=10)) is not None:
        log.append(line)
    text = "".join(log)
    assert "random_walk ready; 1 devices configured" in text  # its on_startup
    assert "random_walk#0: feeding sensor 10 every 0.05 s" in text
    assert "random_walk#0: stopped" in text  # its finally: ran on cancellation
    assert "random_walk stopped" in text  # its on_shutdown


def test_check_config_accepts_the_examples_config_with_its_sensor_type(example_plugin):
    # example.yaml names `type: dissolved_oxygen`, which only the installed plugin provides.
    done = subprocess.run([SMARTANOM, "check-config", "example.yaml"], cwd=EXAMPLE_PLUGIN, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "3 sensors" in done.stdout + done.stderr and "3 plugin instances" in done.stdout + done.stderr


@pytest.mark.parametrize(
    "options, env",
    [
        ((), {}),
        # The guide's advice for those who switch pytest's plugin autoloading off.
        (("-p", "smartanom", "-p", "tornado"), {"PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}),
    ],
    ids=["autoload", "explicit"],
)
def test_the_examples_own_tests_pass_with_the_fixtures_smartanom_ships(example_plugin, options, env):
    # No conftest.py in the example: hub_factory and ws_client come from the
    # smartanom package's pytest11 entry point, as for any plugin author.
    assert not list(EXAMPLE_PLUGIN.rglob("conftest.py"))
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *options, "tests"],
        cwd=EXAMPLE_PLUGIN, capture_output=True, text=True, timeout=120,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1", **env},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search(r"\b2 passed\b", done.stdout), done.stdout
