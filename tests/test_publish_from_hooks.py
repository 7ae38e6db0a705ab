"""A reading published from on_reading (through the hub view) goes on the bus after the
current dispatch, not inside it; chains and bursts are bounded, and drops are counted."""

import json
import logging

import pytest
import tornado.httpclient

from smartanom import hookimpl
from smartanom.hubview import Publishing

from conftest import until

HUB = """
devices:
  - id: 1
    name: Tank
    sensors:
      - {id: 1, type: ph, min: 0, max: 14}
      - {id: 2, type: ec, min: 0, max: 100}
"""


async def hub_view_stats(hub) -> dict:
    response = await tornado.httpclient.AsyncHTTPClient().fetch(hub.url + "/api/plugins")
    return json.loads(response.body)["hub_view"]


class Derived:
    """An exporter computing sensor 2 from sensor 1: the legitimate use."""

    def __init__(self):
        self.hub = None
        self.calls = []  # ("in"/"out", sensor id): entering and leaving on_reading

    @hookimpl
    def on_startup(self, hub):
        self.hub = hub

    @hookimpl
    def on_reading(self, reading):
        self.calls.append(("in", reading.sensor.id))
        if reading.sensor.id == 1:
            self.published = self.hub.publish_reading(2, reading.value * 2, source="derived")
        self.calls.append(("out", reading.sensor.id))


@pytest.mark.gen_test
async def test_a_reading_published_from_on_reading_arrives_after_the_call_returns(hub_factory, ws_client):
    derived = Derived()
    hub = await hub_factory(HUB, plugins=[("derived", derived)], entry_points=False)
    client = await ws_client(hub, "/ws/sensor/2/")
    assert hub.view.publish_reading(1, 6.0) is True
    update = await client.receive(type="sensor_data_update")
    assert (update["sensor_id"], update["value"]) == (2, 12.0)
    assert derived.published is True
    # Not nested: the hook saw sensor 2's reading after its call for sensor 1 had returned.
    assert derived.calls == [("in", 1), ("out", 1), ("in", 2), ("out", 2)]
    assert await hub_view_stats(hub) == {"refused": {}, "deferred": 1, "waiting": 0, "dropped": {}}


class KeepsHub:
    hub = None

    @hookimpl
    def on_startup(self, hub):
        self.hub = hub


class Echo(KeepsHub):
    """Publishes a reading for every reading, its own included: a loop without end if allowed."""

    @hookimpl
    def on_reading(self, reading):
        self.hub.publish_reading(1, reading.value, source="echo")


@pytest.mark.gen_test
async def test_a_plugin_publishing_for_every_reading_ends_after_a_bounded_chain(hub_factory, caplog):
    caplog.set_level(logging.WARNING, "smartanom.plugins")
    hub = await hub_factory(HUB, plugins=[("echo", Echo())], entry_points=False)
    assert hub.view.publish_reading(1, 6.0) is True
    await until(lambda: hub.plugins.publishing.dropped, what="the chain's end")
    stats = await hub_view_stats(hub)
    assert stats == {"refused": {}, "deferred": Publishing.MAX_CHAIN, "waiting": 0, "dropped": {"echo": 1}}
    assert "Plugin echo: a reading it published from a hook was dropped: it would be link 4 of a chain" in caplog.text
    # A second outside reading starts a new chain of the same length.
    hub.view.publish_reading(1, 6.1)
    await until(lambda: hub.plugins.publishing.dropped["echo"] == 2, what="the second chain's end")
    assert hub.plugins.publishing.deferred == 2 * Publishing.MAX_CHAIN
    assert hub.plugins.records["echo"].errors == []  # no RecursionError


class Burst(KeepsHub):
    @hookimpl
    def on_reading(self, reading):
        if reading.source != "burst":
            self.results = [self.hub.publish_reading(2, 1.0, source="burst") for _ in range(Publishing.MAX_WAITING + 5)]


@pytest.mark.gen_test
async def test_readings_waiting_to_be_published_from_hooks_are_bounded(hub_factory):
    burst = Burst()
    hub = await hub_factory(HUB, plugins=[("burst", burst)], entry_points=False)
    hub.view.publish_reading(1, 6.0)
    assert burst.results.count(True) == Publishing.MAX_WAITING and burst.results.count(False) == 5
    assert hub.plugins.publishing.as_dict()["waiting"] == Publishing.MAX_WAITING
    await until(lambda: hub.plugins.publishing.as_dict()["waiting"] == 0, what="the queue to drain")
    assert (await hub_view_stats(hub))["dropped"] == {"burst": 5}
