"""What the hub says about its plugins: `smartanom plugins`, GET /api/plugins,
and the debugging switches SMARTANOM_PLUGINS and SMARTANOM_TRACE_HOOKS."""

import json
import logging
import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
import tornado.httpclient

from conftest import with_pythonpath

SMARTANOM = str(Path(sys.executable).parent / "smartanom")

HUB = """
devices:
  - id: 1
    name: Tank
    sensors:
      - {id: 1, type: ph}
plugins:
  - platform: simulated
    device: 1
    interval: 0.05
"""


def smartanom(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([SMARTANOM, *args], capture_output=True, text=True, timeout=60, env={**os.environ, **env})


def rows(listing: str) -> dict[str, list[str]]:
    """`smartanom plugins` output -> {name: [package, version, platforms, error lines...]}."""
    found = {}
    lines = listing.splitlines()
    assert lines[0].split() == ["NAME", "PACKAGE", "VERSION", "PLATFORMS"]
    for line in lines[1:]:
        if line.startswith("  ! "):
            found[name].append(line[4:])
        else:
            name, package, version, platforms = line.split(None, 3)
            found[name] = [package, version, platforms]
    return found


def test_smartanom_plugins_lists_name_package_version_platforms_and_errors(example_plugin, broken_plugin_dir):
    done = smartanom("plugins", PYTHONPATH=with_pythonpath(broken_plugin_dir))
    assert done.returncode == 0, done.stderr
    listed = rows(done.stdout)
    assert listed["broken"] == ["smartanom-broken-plugin", "0.3.1", "-", "failed to load: ModuleNotFoundError: No module named 'smartanom_missing_driver'"]
    assert listed["example"] == ["smartanom-example-plugin", "0.1.0", "random_walk"]
    assert listed["simulated"] == ["smartanom", metadata.version("smartanom"), "simulated"]
    assert list(listed) == sorted(listed)  # entry points in name order
    # The load failure is in the log too, with a traceback to debug it.
    assert "Plugin broken (smartanom-broken-plugin 0.3.1) failed to load" in done.stderr
    assert "Traceback" in done.stderr


def test_smartanom_plugins_env_switch_loads_only_the_named_plugins(example_plugin):
    done = smartanom("plugins", SMARTANOM_PLUGINS="example")
    assert list(rows(done.stdout)) == ["example"]
    assert "Plugin simulated skipped (SMARTANOM_PLUGINS=example)" in done.stderr


@pytest.mark.gen_test
async def test_api_plugins_returns_what_the_cli_lists(example_plugin, broken_plugin, hub_factory):
    hub = await hub_factory(HUB)
    response = await tornado.httpclient.AsyncHTTPClient().fetch(f"{hub.url}/api/plugins")
    assert response.headers["Content-Type"].startswith("application/json")
    body = json.loads(response.body)
    by_name = {p["name"]: p for p in body["plugins"]}
    assert by_name["example"] == {
        "name": "example",
        "package": "smartanom-example-plugin",
        "version": "0.1.0",
        "platforms": ["random_walk"],
        "loaded": True,
        "error": None,
        "errors": [],
    }
    assert by_name["broken"]["loaded"] is False
    assert by_name["broken"]["error"] == "failed to load: ModuleNotFoundError: No module named 'smartanom_missing_driver'"
    assert body["instances"] == [
        {"label": "simulated#0", "platform": "simulated", "plugin": "simulated", "state": "running", "restarts": 0, "last_error": None, "loop_stalls": 0, "stats": {}}
    ]

    listed = rows(smartanom("plugins", PYTHONPATH=with_pythonpath(broken_plugin)).stdout)
    assert sorted(listed) == sorted(by_name)
    for name, plugin in by_name.items():
        assert listed[name][:3] == [plugin["package"], plugin["version"], ", ".join(plugin["platforms"]) or "-"]


@pytest.mark.gen_test
async def test_trace_switch_logs_every_hook_call(example_plugin, hub_factory, caplog, monkeypatch):
    monkeypatch.setenv("SMARTANOM_TRACE_HOOKS", "1")
    caplog.set_level(logging.INFO, logger="smartanom.plugins")
    hub = await hub_factory(HUB)
    await hub.stop()
    traced = [r.getMessage() for r in caplog.records if r.getMessage().startswith("hook ")]
    assert "hook register_platforms() on example -> [Platform(name='random_walk'" in "\n".join(traced)
    assert "hook on_startup(hub) on example -> None" in traced
    assert "hook on_shutdown(hub) on example -> None" in traced


@pytest.mark.gen_test
async def test_without_the_trace_switch_hook_calls_are_not_logged(example_plugin, hub_factory, caplog, monkeypatch):
    monkeypatch.delenv("SMARTANOM_TRACE_HOOKS", raising=False)
    caplog.set_level(logging.INFO, logger="smartanom.plugins")
    await hub_factory(HUB)
    assert not [r for r in caplog.records if r.getMessage().startswith("hook ")]
