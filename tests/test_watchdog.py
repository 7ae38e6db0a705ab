"""core/watchdog.py in a running hub: a plugin that blocks the loop is named, counted, and
costs innocent devices nothing.

The culprit is a throwaway plugin whose task calls time.sleep (what the
watchdog must catch cannot be simulated: the loop really is held).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time

import pytest
import tornado.httpclient

from smartanom import Platform, hookimpl
from smartanom.events import DeviceStatusChanged

HUB = """
watchdog:
  threshold: 0.3
devices:
  - id: 1
    name: Innocent tank
    offline_after: 1
    sensors:
      - {id: 1, type: ph}
  - id: 2
    name: Blocker tank
    sensors:
      - {id: 2, type: ec}
plugins:
  - platform: feeder
    device: 1
  - platform: blocker
    name: slow-driver
    device: 2
"""


def plugins(seconds: float = 2.0):
    """`feeder` reads device 1 every 0.6 s; `blocker` holds the loop for `seconds`
    right after the feeder's next reading once `trigger` is set, so the stall
    falls where the status tracker checks before the feeder reads again."""
    trigger, go = asyncio.Event(), asyncio.Event()

    async def feed(ctx):
        while True:
            ctx.publish_reading(1, 6.5)
            if trigger.is_set():
                trigger.clear()
                go.set()
            await asyncio.sleep(0.6)

    async def block(ctx):
        await go.wait()
        read_the_probe_the_wrong_way(seconds)
        await asyncio.Event().wait()

    class Platforms:
        @hookimpl
        def register_platforms(self):
            return [Platform("feeder", run=feed), Platform("blocker", run=block)]

    return trigger, ("platforms", Platforms())


def read_the_probe_the_wrong_way(seconds: float) -> None:
    time.sleep(seconds)  # the bug the watchdog exists for


async def get(hub, path: str) -> dict:
    response = await tornado.httpclient.AsyncHTTPClient().fetch(f"{hub.url}{path}", raise_error=False)
    return json.loads(response.body)


async def until(condition, what: str, timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


@pytest.mark.gen_test(timeout=30)
async def test_a_plugin_that_blocks_the_loop_is_named_counted_and_harms_no_device(hub_factory, caplog):
    caplog.set_level(logging.INFO)
    trigger, plugin = plugins(2.0)
    hub = await hub_factory(HUB, plugins=[plugin])
    await until(lambda: hub.status.of(1) == "active", "the innocent device active")
    changes = []
    hub.bus.subscribe(DeviceStatusChanged, changes.append)

    trigger.set()  # held for 2 s: twice the innocent device's offline_after
    await until(lambda: hub.watchdog.stalls == 1, "the stall to be reported")
    (report,) = [r.getMessage() for r in caplog.records if r.name == "smartanom.watchdog"]
    assert "by plugin instance slow-driver;" in report, report
    assert "read_the_probe_the_wrong_way" in report and "time.sleep(seconds)" in report  # its stack
    held = float(report.split("held for ")[1].split(" s")[0])
    assert 1.9 <= held <= 3.0, report

    instances = {i["label"]: i for i in (await get(hub, "/api/plugins"))["instances"]}
    assert instances["slow-driver"]["loop_stalls"] == 1 and instances["feeder#0"]["loop_stalls"] == 0
    loop = (await get(hub, "/api/health"))["loop"]
    assert loop["stalls"] == 1 and loop["threshold"] == 0.3 and loop["last"]["culprit"] == "plugin instance slow-driver"
    assert 1.9 <= loop["longest"] <= 3.0

    # Two more offline_after periods of normal running: the stall cost the innocent device nothing.
    await asyncio.sleep(2)
    assert [(c.device.id, c.status) for c in changes] == []


@pytest.mark.gen_test(timeout=30)
async def test_a_blocking_callback_is_named_by_its_function(hub_factory, caplog):
    hub = await hub_factory(HUB, plugins=[plugins()[1]])
    asyncio.get_running_loop().call_soon(read_the_probe_the_wrong_way, 0.8)
    await until(lambda: hub.watchdog.stalls == 1, "the stall to be reported")
    assert hub.watchdog.last.culprit.startswith("callback read_the_probe_the_wrong_way (")
    assert hub.watchdog.last.instance is None


@pytest.mark.gen_test(timeout=30)
async def test_short_waits_are_not_stalls_and_the_watchdog_can_be_off(hub_factory):
    hub = await hub_factory(HUB, plugins=[plugins()[1]])
    read_the_probe_the_wrong_way(0.1)  # under the threshold
    await asyncio.sleep(1)
    assert hub.watchdog.stalls == 0
    off = await hub_factory(HUB.replace("threshold: 0.3", "enabled: false"), plugins=[plugins()[1]])
    assert off.watchdog is None and (await get(off, "/api/health"))["loop"] is None


@pytest.mark.gen_test(timeout=30)
async def test_a_blocking_hook_is_blamed_on_its_plugin_not_on_the_instance_whose_reading_it_was(hub_factory, caplog):
    # The on_reading hook runs inside the feeder's task (publish_reading calls
    # it): the feeder is innocent, the plugin with the hook is the culprit.
    class Exporter:
        blocked = False

        @hookimpl
        def on_reading(self, reading):
            if not Exporter.blocked:
                Exporter.blocked = True
                read_the_probe_the_wrong_way(0.8)

    hub = await hub_factory(HUB, plugins=[plugins()[1], ("slow-exporter", Exporter())])
    await until(lambda: hub.watchdog.stalls == 1, "the stall to be reported")
    assert hub.watchdog.last.culprit == "plugin slow-exporter's on_reading hook, inside task plugin:feeder#0"
    assert hub.watchdog.last.instance is None
    (report,) = [r.getMessage() for r in caplog.records if r.name == "smartanom.watchdog"]
    assert "by plugin slow-exporter's on_reading hook" in report and "read_the_probe_the_wrong_way" in report
    instances = {i["label"]: i for i in (await get(hub, "/api/plugins"))["instances"]}
    assert instances["feeder#0"]["loop_stalls"] == 0
