"""core/hubview.py: what on_startup, on_shutdown and PluginContext hand a plugin, and nothing more."""

import json

import pytest
import tornado.httpclient

from smartanom import SensorReading, hookimpl
from smartanom.hubview import HubView

HUB = """
devices:
  - id: 1
    name: Tank
    sensors: [{id: 1, type: ph, min: 0, max: 14}]
auth:
  enabled: true
  tokens_env: SMARTANOM_TEST_TOKENS
"""

PUBLIC = {"bus", "registry", "config", "url", "publish_reading", "device_status"}


class Keeper:
    def __init__(self):
        self.seen = []

    @hookimpl
    def on_startup(self, hub):
        self.seen.append(hub)

    @hookimpl
    def on_shutdown(self, hub):
        self.seen.append(hub)


@pytest.fixture
def tokens(monkeypatch):
    monkeypatch.setenv("SMARTANOM_TEST_TOKENS", "read:" + "r" * 32)


@pytest.mark.gen_test
async def test_hooks_get_the_view_whose_public_names_are_the_documented_ones(hub_factory, tokens):
    keeper = Keeper()
    hub = await hub_factory(HUB, plugins=[("keeper", keeper)], entry_points=False)
    await hub.stop()
    view = keeper.seen[0]
    assert isinstance(view, HubView) and keeper.seen == [view, view]
    assert {n for n in dir(view) if not n.startswith("_")} == PUBLIC
    assert view.url == hub.url and view.registry.sensor(1).type == "ph"
    assert view.config.server.host == "127.0.0.1"
    with pytest.raises(AttributeError):
        view.storage  # noqa: B018 (only what the view offers is reachable)


@pytest.mark.gen_test
async def test_config_is_read_only_and_tokens_are_not_on_it(hub_factory, tokens):
    hub = await hub_factory(HUB, entry_points=False)
    config = hub.view.config
    with pytest.raises(AttributeError, match="read-only"):
        config.server.port = 1
    with pytest.raises(AttributeError, match="offers no 'tokens'"):
        config.tokens  # noqa: B018
    assert isinstance(config.devices, tuple) and config.devices[0].sensors[0].max == 14
    with pytest.raises(AttributeError, match="read-only"):
        config.devices[0].name = "x"
    assert hub.config.server.port == 0 and config.auth.enabled is True


@pytest.mark.gen_test
async def test_publish_reading_goes_through_the_same_checks_as_a_platforms(hub_factory):
    hub = await hub_factory(HUB.split("auth:")[0], entry_points=False)
    seen = []
    hub.view.bus.subscribe(SensorReading, seen.append)
    assert hub.view.publish_reading(1, 6.5, source="exporter-test") is True
    assert hub.view.publish_reading(1, 99.0) is False  # outside 0..14: refused, not raised
    with pytest.raises(ValueError, match="finite"):
        hub.view.publish_reading(1, float("nan"))
    assert [(r.value, r.source) for r in seen] == [(6.5, "exporter-test")]
    # Refused through the view: counted like a PluginContext's, shown in GET /api/plugins.
    response = await tornado.httpclient.AsyncHTTPClient().fetch(hub.url + "/api/plugins")
    assert json.loads(response.body)["hub_view"]["refused"] == {"1": 1}
    assert str(hub.view.device_status(1)) == "active" and hub.view.device_status(9) is None
