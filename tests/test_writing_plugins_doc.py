"""docs/writing-plugins.md: every hook has a section, every code block is either
a file of the example plugin (verbatim) or run here, and the guide imports only
the public surface, `smartanom.__all__`."""

import ast
import asyncio
import inspect
import json
import logging
import os
import re
import subprocess
import sys
import threading
import types
from pathlib import Path

import pytest

import smartanom
from smartanom import SensorReading, hookspecs
from conftest import EXAMPLE_PLUGIN, ROOT

GUIDE = ROOT / "docs" / "writing-plugins.md"
SMARTANOM = str(Path(sys.executable).parent / "smartanom")
FENCE = re.compile(r"^```(\w+)([^\n]*)\n(.*?)^```$", re.M | re.S)
# Every block with an id= is used by exactly one test below.
TESTED_IDS = {
    "public-surface", "layout", "plugins-output", "ph-alarm", "availability", "blocking-driver", "bad-options",
    "bad-options-error", "sensor-types", "exporter", "routes", "log-throttle",
}


def blocks() -> list[dict]:
    found = []
    for match in FENCE.finditer(GUIDE.read_text()):
        attrs = dict(a.split("=", 1) for a in match.group(2).split())
        found.append({"lang": match.group(1), "code": match.group(3), **attrs})
    return found


def block(block_id: str) -> str:
    [code] = [b["code"] for b in blocks() if b.get("id") == block_id]
    return code


def load(block_id: str, monkeypatch) -> types.ModuleType:
    """A python block of the guide as a module, as if it were a plugin's file."""
    module = types.ModuleType(f"guide_{block_id.replace('-', '_')}")
    monkeypatch.setitem(sys.modules, module.__name__, module)
    exec(compile(block(block_id), f"{GUIDE}:{block_id}", "exec"), module.__dict__)
    return module


def hookspec_names() -> list[str]:
    return [name for name, f in inspect.getmembers(hookspecs, inspect.isfunction) if hasattr(f, f"{hookspecs.PROJECT}_spec")]


def test_every_hookspec_has_a_section_with_its_exact_signature():
    names = hookspec_names()
    assert {"register_platforms", "on_startup", "on_shutdown"} <= set(names)
    headings = re.findall(r"^### `(\w+)(\(.*\))`$", GUIDE.read_text(), re.M)
    documented = dict(headings)
    for name in names:
        assert name in documented, f"core/hookspecs.py has {name} but docs/writing-plugins.md has no '### `{name}(...)`' section"
        assert documented[name] == str(inspect.signature(getattr(hookspecs, name))), name


def hook_test_names() -> list[str]:
    """Names of the test functions called test_hook_... anywhere under tests/."""
    names = []
    for path in (ROOT / "tests").glob("test_*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name.startswith("test_hook_"):
                names.append(node.name)
    return names


def test_every_hookspec_has_a_test_named_after_it():
    # Like Datasette's test_plugin_hooks_have_tests: a new hook needs a test, whose
    # name says which hook it tests (`test_hook_on_startup_and_on_shutdown` covers two).
    tested = hook_test_names()
    for name in hookspec_names():
        pattern = re.compile(rf"(^|_){name}(_|$)")
        assert any(pattern.search(t.removeprefix("test_hook_")) for t in tested), (
            f"core/hookspecs.py has {name} but no test function is called test_hook_{name}..."
        )


def test_every_code_block_is_an_example_file_or_tested_here():
    ids = []
    for b in blocks():
        if b["lang"] == "console":
            continue  # shell commands; the tests run the same ones (pip install, smartanom, pytest)
        assert "file" in b or "id" in b, f"untested {b['lang']} block in the guide:\n{b['code']}"
        if "id" in b:
            ids.append(b["id"])
    assert len(ids) == len(set(ids))
    assert set(ids) == TESTED_IDS


def example_files() -> set[str]:
    return {
        str(p.relative_to(ROOT))
        for p in EXAMPLE_PLUGIN.rglob("*")
        if p.is_file() and p.suffix in {".py", ".toml", ".yaml"} and not {"build", "__pycache__"} & set(p.parts) and ".egg-info" not in str(p)
    }


def test_file_blocks_are_the_example_files_verbatim_and_show_them_all():
    shown = {b["file"]: b["code"] for b in blocks() if "file" in b}
    for path, code in shown.items():
        assert (ROOT / path).read_text() == code, f"docs/writing-plugins.md differs from {path}"
    assert set(shown) == example_files()


def test_layout_tree_lists_the_example_packages_files():
    names = re.findall(r"[─ ]([\w.-]+)/?\s", block("layout"))
    listed = {n for n in names if "." in n}
    actual = {p.name for p in EXAMPLE_PLUGIN.rglob("*") if p.is_file() and not {"build", "__pycache__"} & set(p.parts) and ".egg-info" not in str(p)}
    assert listed == actual


def core_imports(source: str, where: str) -> list[str]:
    """Names a piece of plugin code imports from the hub; fails on any private import."""
    names = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                assert alias.name.split(".")[0] != "smartanom", f"{where}: `import {alias.name}`; use `from smartanom import NAME`"
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "smartanom":
            assert node.module == "smartanom", f"{where}: imports from private module {node.module}"
            names += [alias.name for alias in node.names]
    return names


def test_the_guide_and_the_example_import_only_core_all():
    sources = {f"guide block {b.get('id') or b.get('file')}": b["code"] for b in blocks() if b["lang"] == "python"}
    sources.update({str(p): p.read_text() for p in EXAMPLE_PLUGIN.rglob("*.py") if "build" not in p.parts})
    for where, source in sources.items():
        for name in core_imports(source, where):
            assert name in smartanom.__all__, f"{where} imports smartanom.{name}, which is not in smartanom.__all__"


def test_the_public_surface_block_lists_exactly_core_all_and_says_the_rest_is_private():
    namespace = {}
    exec(block("public-surface"), namespace)
    assert sorted(core_imports(block("public-surface"), "public-surface")) == sorted(smartanom.__all__)
    assert all(namespace[name] is getattr(smartanom, name) for name in smartanom.__all__)
    text = " ".join(GUIDE.read_text().split())
    assert "That list is `smartanom.__all__`. Everything else in the hub" in text and "is private" in text


def test_plugins_output_is_what_smartanom_plugins_prints(example_plugin):
    done = subprocess.run([SMARTANOM, "plugins"], capture_output=True, text=True, timeout=60, env={**os.environ, "SMARTANOM_PLUGINS": ""})
    printed = done.stdout.splitlines()
    for line in block("plugins-output").splitlines():
        assert line in printed, f"{line!r} not in:\n{done.stdout}"


def test_bad_options_give_the_errors_the_guide_shows(example_plugin, tmp_path):
    (tmp_path / "hub.yaml").write_text(block("bad-options"))
    done = subprocess.run([SMARTANOM, "check-config", "hub.yaml"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr == block("bad-options-error")


HUB = """
devices:
  - id: 1
    name: Tank
    sensors:
      - {id: 1, type: ph}
  - id: 2
    name: Nursery
    sensors:
      - {id: 2, type: ec}
"""


@pytest.mark.gen_test
async def test_ph_alarm_warns_on_out_of_range_readings_until_shutdown(hub_factory, ws_client, caplog, monkeypatch):
    alarm = load("ph-alarm", monkeypatch)
    hub = await hub_factory(HUB, plugins=[("ph_alarm", alarm)])
    client = await ws_client(hub, "/ws/sensor-data/")
    for value in (6.0, 7.2):
        await client.request({"type": "sensor_data", "sensor_id": 1, "value": value}, type="sensor_data_update")
    warnings = [r.getMessage() for r in caplog.records if r.name == "smartanom_ph_alarm"]
    assert warnings == ["pH 7.20 in Tank is out of range"]
    await hub.stop()
    hub.bus.publish(SensorReading(hub.registry.sensor(1), 8.0, 0.0))
    assert len([r for r in caplog.records if r.name == "smartanom_ph_alarm"]) == 1  # unsubscribed


@pytest.mark.gen_test(timeout=15)
async def test_availability_example_marks_the_device_inactive_and_back(hub_factory, ws_client, monkeypatch):
    probe = load("availability", monkeypatch)
    hub = await hub_factory(HUB + "plugins:\n  - {platform: network_probe, device: 2, sensor: 2, interval: 0.05}\n", plugins=[("network_probe", probe)], entry_points=False)
    device = await ws_client(hub, "/ws/device/2/")
    assert (await device.receive(type="sensor_data_update"))["value"] == 1.8
    assert hub.status.of(2) == "active"
    probe.PROBE.online = False
    assert (await device.receive(type="device_status"))["status"] == "inactive"
    probe.PROBE.online = True
    assert (await device.receive(type="device_status"))["status"] == "active"


@pytest.mark.gen_test(timeout=15)
async def test_blocking_driver_examples_publish_and_their_threads_end(hub_factory, ws_client, monkeypatch):
    driver = load("blocking-driver", monkeypatch)
    config = HUB + (
        "plugins:\n"
        "  - {platform: probe_polling, device: 1, sensor: 1, interval: 0.05}\n"
        "  - {platform: probe_thread, name: threaded, device: 2, sensor: 2, interval: 0.05}\n"
    )
    hub = await hub_factory(config, plugins=[("probe", driver)], entry_points=False)
    client = await ws_client(hub, "/ws/sensor-data/")
    seen = set()
    while seen != {1, 2}:
        update = await client.receive(type="sensor_data_update")
        assert update["value"] == 6.1
        seen.add(update["sensor_id"])
    assert any(t.name == "threaded" for t in threading.enumerate())
    await hub.stop()
    assert not any(t.name == "threaded" for t in threading.enumerate())
    assert all(state.state == "stopped" for state in hub.instances.values())


@pytest.mark.gen_test
async def test_sensor_types_example_adds_types_the_yaml_may_name(hub_factory, ws_client, monkeypatch):
    types = load("sensor-types", monkeypatch)
    hub = await hub_factory(
        "devices: [{id: 1, name: Tank, sensors: [{id: 7, type: orp}, {id: 8, type: co2}]}]\n",
        plugins=[("more_types", types)], entry_points=False,
    )
    orp = hub.registry.sensor(7)
    assert (orp.unit, orp.name, orp.low, orp.high) == ("mV", "ORP", -2000, 2000)
    assert hub.registry.sensor(8).device_class == "carbon_dioxide"
    client = await ws_client(hub, "/ws/sensor/7/")
    error = await client.request({"type": "sensor_data", "value": 5000}, type="error")
    assert error["code"] == "INVALID_VALUE"


@pytest.mark.gen_test
async def test_exporter_example_writes_line_protocol_for_readings_and_status_changes(hub_factory, ws_client, monkeypatch, tmp_path):
    exporter = load("exporter", monkeypatch)
    exporter.OUTPUT = tmp_path / "readings.lp"
    hub = await hub_factory(HUB, plugins=[("exporter", exporter)], entry_points=False)
    client = await ws_client(hub, "/ws/sensor-data/")
    await client.request({"type": "sensor_data", "sensor_id": 1, "value": 6.25, "timestamp": "2025-09-11T15:30:00Z"}, type="sensor_data_update")
    await hub.stop()
    lines = exporter.OUTPUT.read_text().splitlines()
    assert lines[0] == "device_status,device=1 status=\"active\" " + lines[0].rsplit(" ", 1)[1]
    assert lines[1] == "ph,sensor=1,device=1 value=6.25 1757604600000000000"


@pytest.mark.gen_test
async def test_routes_example_serves_under_the_plugins_prefix(hub_factory, monkeypatch):
    import tornado.httpclient

    routes = load("routes", monkeypatch)
    hub = await hub_factory(HUB, plugins=[("tanks", routes)], entry_points=False)
    client = tornado.httpclient.AsyncHTTPClient()
    answer = await client.fetch(hub.url + "/plugins/tanks/tanks/1")
    assert json.loads(answer.body) == {"device": "Tank", "status": "inactive"}
    missing = await client.fetch(hub.url + "/plugins/tanks/tanks/9", raise_error=False)
    assert missing.code == 404


def test_log_throttle_example_logs_the_first_bad_line_and_counts_the_rest(monkeypatch, caplog):
    example = load("log-throttle", monkeypatch)
    ctx = types.SimpleNamespace(stats={}, log=logging.getLogger("smartanom.plugins.guide"))
    for _ in range(3):
        example.report_bad_line(ctx, "/dev/ttyUSB0", b"garbage")
    example.report_bad_line(ctx, "/dev/ttyUSB1", b"noise")
    assert ctx.stats == {"bad_lines": 4}
    assert [r.getMessage() for r in caplog.records if r.name == "smartanom.plugins.guide"] == [
        "/dev/ttyUSB0: ignored b'garbage' (0 more since the last report)",
        "/dev/ttyUSB1: ignored b'noise' (0 more since the last report)",
    ]
