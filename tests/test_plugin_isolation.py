"""A broken plugin is reported by name and version and stops nothing else.

Each test runs a real hub on a free port with the built-in simulator feeding
device 1 and a throwaway (or really pip-installed, broken) plugin meant for
device 2, then checks the log, the device statuses and that the simulator's
readings still reach a WebSocket client.
"""

import asyncio
import logging
import sqlite3

import pytest
from pydantic import field_validator

from smartanom import Platform, PlatformOptions, hookimpl
from smartanom.errors import PluginError

HUB = """
devices:
  - id: 1
    name: Simulated tank
    sensors:
      - {id: 1, type: ph}
  - id: 2
    name: Plugin tank
    sensors:
      - {id: 2, type: ec}
plugins:
  - platform: simulated
    device: 1
    interval: 0.05
"""


def with_entry(platform: str) -> str:
    return HUB + f"  - platform: {platform}\n    device: 2\n"


async def simulator_still_runs(hub, ws_client) -> None:
    client = await ws_client(hub, "/ws/sensor/1/")
    update = await client.receive(type="sensor_data_update", timeout=5)
    assert update["sensor_id"] == 1
    assert hub.instances["simulated#0"].state == "running"


def errors(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


class Recorder:
    """A well-behaved plugin that notes which hooks reached it."""

    def __init__(self):
        self.calls = []

    @hookimpl
    def on_startup(self, hub):
        self.calls.append("on_startup")

    @hookimpl
    def on_shutdown(self, hub):
        self.calls.append("on_shutdown")


@pytest.mark.gen_test
async def test_a_plugin_that_fails_to_import_is_reported_with_its_package_version(broken_plugin, hub_factory, ws_client, caplog):
    hub = await hub_factory(with_entry("broken_thing"))
    assert (
        "Plugin broken (smartanom-broken-plugin 0.3.1) failed to load: "
        "ModuleNotFoundError: No module named 'smartanom_missing_driver'"
    ) in errors(caplog)
    # Its entry is set aside with a pointer to the file and to the failed plugin.
    [not_started] = [m for m in errors(caplog) if m.startswith("Plugin entry not started")]
    assert "line 15: plugins[1].platform: unknown platform 'broken_thing'" in not_started
    assert "plugins that failed to load: broken (smartanom-broken-plugin 0.3.1)" in not_started
    record = hub.plugins.records["broken"]
    assert (record.loaded, record.platforms) == (False, [])
    await simulator_still_runs(hub, ws_client)
    assert hub.status.of(2) == "inactive"


class FailsToRegister:
    @hookimpl
    def register_platforms(self):
        raise RuntimeError("no USB driver for the probe")


@pytest.mark.gen_test
async def test_an_exception_in_register_platforms_is_reported(hub_factory, ws_client, caplog):
    hub = await hub_factory(with_entry("probe"), plugins=[("probe", FailsToRegister(), "smartanom-probe", "2.0.1")])
    assert "Plugin probe (smartanom-probe 2.0.1) raised in register_platforms: RuntimeError: no USB driver for the probe" in errors(caplog)
    assert any("unknown platform 'probe'" in m for m in errors(caplog))
    assert hub.plugins.records["probe"].as_dict()["errors"] == ["raised in register_platforms: RuntimeError: no USB driver for the probe"]
    await simulator_still_runs(hub, ws_client)


class FailsToStart:
    @hookimpl
    async def on_startup(self, hub):
        await asyncio.sleep(0)
        raise ConnectionRefusedError("cloud service unreachable")


@pytest.mark.gen_test
async def test_an_exception_in_on_startup_is_reported_and_later_plugins_still_start(hub_factory, ws_client, caplog):
    recorder = Recorder()
    hub = await hub_factory(HUB, plugins=[("cloud", FailsToStart(), "smartanom-cloud", "1.4.0"), ("recorder", recorder)])
    assert "Plugin cloud (smartanom-cloud 1.4.0) raised in on_startup: ConnectionRefusedError: cloud service unreachable" in errors(caplog)
    assert recorder.calls == ["on_startup"]
    await simulator_still_runs(hub, ws_client)


class FailsToStop:
    @hookimpl
    def on_shutdown(self, hub):
        raise OSError("port already closed")


@pytest.mark.gen_test
async def test_an_exception_in_on_shutdown_is_reported_and_the_hub_still_stops_cleanly(hub_factory, ws_client, caplog):
    recorder = Recorder()
    hub = await hub_factory(HUB, plugins=[("closer", FailsToStop(), "smartanom-closer", "0.9"), ("recorder", recorder)])
    await simulator_still_runs(hub, ws_client)
    await hub.stop()
    assert "Plugin closer (smartanom-closer 0.9) raised in on_shutdown: OSError: port already closed" in errors(caplog)
    assert recorder.calls == ["on_startup", "on_shutdown"]
    # Storage was still flushed and closed after the failing hook.
    with sqlite3.connect(hub.storage.path) as db:
        [(stored,)] = db.execute("SELECT count(*) FROM readings WHERE sensor_id = 1")
    assert stored > 0


def crashing_plugin(runs: list):
    async def run(ctx):
        runs.append(ctx.label)
        ctx.publish_reading(2, 1.5)
        await asyncio.sleep(0.1)
        raise RuntimeError("probe unplugged")

    class Crashing:
        @hookimpl
        def register_platforms(self):
            return [Platform("flaky", run=run)]

    return Crashing()


@pytest.mark.gen_test(timeout=20)
async def test_a_crashing_task_is_restarted_with_backoff_and_its_device_goes_inactive(hub_factory, ws_client, caplog):
    caplog.set_level(logging.INFO)
    runs = []
    hub = await hub_factory(with_entry("flaky"), plugins=[("flaky", crashing_plugin(runs), "smartanom-flaky", "3.1.4")])
    device = await ws_client(hub, "/ws/device/2/")
    # Each run publishes (active) then crashes (inactive). Depending on when the
    # client connected it sees the first crash, or the restart and second crash.
    seen = [(await device.receive(type="device_status"))["status"]]
    while seen[-2:] != ["active", "inactive"]:
        seen.append((await device.receive(type="device_status"))["status"])
    # First restart after 1 s, then 2 s: wait for the second crash's message.
    for _ in range(100):
        if len(runs) >= 2 and hub.instances["flaky#1"].restarts >= 1 and "restarting in 2 s" in caplog.text:
            break
        await asyncio.sleep(0.1)
    assert (
        "Plugin instance flaky#1 (platform flaky from flaky (smartanom-flaky 3.1.4)) crashed: "
        "RuntimeError: probe unplugged; restarting in 1 s"
    ) in caplog.text
    assert "Restarting plugin instance flaky#1 (restart 1)" in caplog.text
    assert "crashed: RuntimeError: probe unplugged; restarting in 2 s" in caplog.text
    assert hub.instances["flaky#1"].last_error == "RuntimeError: probe unplugged"
    await simulator_still_runs(hub, ws_client)


class PickyOptions(PlatformOptions):
    port: str

    @field_validator("port")
    @classmethod
    def _known_port(cls, value):
        return {"/dev/ttyUSB0": value}[value]  # a plugin bug: KeyError for any other port


class Picky:
    @hookimpl
    def register_platforms(self):
        async def run(ctx):
            await asyncio.Event().wait()

        return [Platform("picky", run=run, options=PickyOptions)]


@pytest.mark.gen_test
async def test_an_options_validator_that_crashes_disables_only_its_entry(hub_factory, ws_client, caplog):
    hub = await hub_factory(with_entry("picky") + "    port: /dev/ttyACM0\n", plugins=[("picky", Picky(), "smartanom-picky", "1.0.2")])
    assert any(
        m.startswith("Plugin entry not started: ") and m.endswith(
            "line 15: plugins[1]: platform 'picky' of picky (smartanom-picky 1.0.2): its options validator crashed "
            "(KeyError: '/dev/ttyACM0'); a bug in the plugin, this entry is disabled"
        )
        for m in errors(caplog)
    ), errors(caplog)
    assert list(hub.instances) == ["simulated#0"]  # no instance for the disabled entry
    await simulator_still_runs(hub, ws_client)
    assert hub.status.of(2) == "inactive"


def provider_of(name):
    class Provider:
        @hookimpl
        def register_platforms(self):
            async def run(ctx):
                await asyncio.Event().wait()

            return [Platform(name, run=run, needs_device=False)]

    return Provider()


@pytest.mark.gen_test
async def test_two_plugins_providing_one_platform_is_a_clear_startup_error(hub_factory):
    with pytest.raises(PluginError) as error:
        await hub_factory(HUB, plugins=[("acme", provider_of("ph_probe"), "smartanom-acme", "1.0"), ("rival", provider_of("ph_probe"), "rival-ph", "0.2")])
    assert str(error.value) == (
        "platform 'ph_probe' is provided by two plugins: acme (smartanom-acme 1.0) and rival (rival-ph 0.2); "
        "uninstall one of them or load only one with SMARTANOM_PLUGINS"
    )


class Misspelled:
    @hookimpl
    def on_startp(self, hub):  # no such hook
        pass


class WrongArguments:
    @hookimpl
    def on_startup(self, hub, loop):  # on_startup has no `loop`
        pass


class SyncRun:
    @hookimpl
    def register_platforms(self):
        def run(ctx):  # not async
            pass

        return [Platform("blocking", run=run)]


class NotAList:
    @hookimpl
    def register_platforms(self):
        return Platform("lonely", run=crashing_plugin)


@pytest.mark.gen_test
async def test_invalid_plugins_are_reported_and_dropped(hub_factory, ws_client, caplog):
    hub = await hub_factory(
        HUB,
        plugins=[
            ("typo", Misspelled(), "smartanom-typo", "0.1"),
            ("args", WrongArguments(), "smartanom-args", "0.1"),
            ("sync", SyncRun(), "smartanom-sync", "0.1"),
            ("single", NotAList(), "smartanom-single", "0.1"),
        ],
    )
    messages = errors(caplog)
    assert any(m.startswith("Plugin args (smartanom-args 0.1) is not a valid plugin: PluginValidationError") and "loop" in m for m in messages), messages
    assert not hub.plugins.pm.has_plugin("args")
    assert any(m.startswith("Plugin typo (smartanom-typo 0.1) is not a valid plugin: PluginValidationError") and "on_startp" in m for m in messages), messages
    assert "Plugin sync (smartanom-sync 0.1) register_platforms returned an unusable platform: 'blocking': run must be an `async def` function taking the PluginContext" in messages
    assert "Plugin single (smartanom-single 0.1) register_platforms must return a list of smartanom.Platform, got Platform" in messages
    assert not hub.plugins.pm.has_plugin("typo")
    assert "simulated" in hub.plugins.platforms
    assert not {"blocking", "lonely"} & set(hub.plugins.platforms)
    await simulator_still_runs(hub, ws_client)


class Stubborn:
    @hookimpl
    def register_platforms(self):
        async def run(ctx):
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                pass  # wrong: swallows the hub's request to stop
            await asyncio.sleep(3600)

        return [Platform("stubborn", run=run, needs_device=False)]


@pytest.mark.gen_test
async def test_a_task_that_ignores_cancellation_does_not_hang_shutdown(hub_factory, caplog, monkeypatch):
    monkeypatch.setattr("smartanom.hub.STOP_TIMEOUT", 0.3)
    hub = await hub_factory(HUB + "  - platform: stubborn\n", plugins=[("stubborn", Stubborn(), "smartanom-stubborn", "1.0")])
    await asyncio.sleep(0.05)
    await hub.stop()
    assert "Plugin instance stubborn#1 (from stubborn (smartanom-stubborn 1.0)) did not stop within 0.3 s of being cancelled; left behind" in errors(caplog)
    [left_behind] = [t for t in asyncio.all_tasks() if t.get_name() == "plugin:stubborn#1"]
    left_behind.cancel()  # the second request it does not swallow
    await asyncio.gather(left_behind, return_exceptions=True)
