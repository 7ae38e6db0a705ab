"""A test per hook, each against a real hub. tests/test_writing_plugins_doc.py checks
that every hookspec is named by some test function called `test_hook_...`."""

import asyncio
import json

import pytest
import tornado.httpclient
import tornado.web

from smartanom import DeviceStatus, HubView, Platform, SensorType, hookimpl
from smartanom.builtin.mqtt.discovery import sensor_config
from smartanom.builtin.mqtt.messages import Topics

HUB = """
devices:
  - id: 1
    name: Tank
    offline_after: 60
    sensors:
      - {id: 1, type: ph}
"""


async def fetch(url: str, **kwargs) -> tornado.httpclient.HTTPResponse:
    return await tornado.httpclient.AsyncHTTPClient().fetch(url, raise_error=False, **kwargs)


# --- register_platforms, on_startup, on_shutdown -----------------------------------


@pytest.mark.gen_test
async def test_hook_register_platforms(hub_factory, ws_client):
    async def run(ctx):
        while True:
            ctx.publish_reading(1, 6.0)
            await asyncio.sleep(0.05)

    class Probe:
        @hookimpl
        def register_platforms(self):
            return [Platform("probe", run=run)]

    hub = await hub_factory(HUB + "plugins: [{platform: probe, device: 1}]\n", plugins=[("probe", Probe())], entry_points=False)
    client = await ws_client(hub, "/ws/sensor/1/")
    assert hub.plugins.records["probe"].platforms == ["probe"]
    assert (await client.receive(type="sensor_data_update"))["value"] == 6.0


@pytest.mark.gen_test
async def test_hook_on_startup_and_on_shutdown(hub_factory):
    calls = []

    class Lifecycle:
        @hookimpl
        async def on_startup(self, hub):
            calls.append(("startup", isinstance(hub, HubView), (await fetch(hub.url + "/api/health")).code))

        @hookimpl
        def on_shutdown(self, hub):
            calls.append(("shutdown", isinstance(hub, HubView)))

    hub = await hub_factory(HUB, plugins=[("life", Lifecycle())], entry_points=False)
    await hub.stop()
    assert calls == [("startup", True, 200), ("shutdown", True)]



# --- register_sensor_types ------------------------------------------------------------


class Types:
    @hookimpl
    def register_sensor_types(self):
        return [
            SensorType("dissolved_oxygen", "mg/L", "Dissolved oxygen", low=0, high=20),
            SensorType("co2", "ppm", "CO2", low=0, high=10000, device_class="carbon_dioxide"),
            SensorType("ph", "ph"),  # taken by the hub: reported, the others still load
            SensorType("Bad Name", "x"),
        ]


TYPED = """
devices:
  - id: 1
    name: Tank
    sensors:
      - {id: 1, type: dissolved_oxygen}
      - {id: 2, type: co2, max: 5000}
"""


@pytest.mark.gen_test
async def test_hook_register_sensor_types(hub_factory, ws_client, caplog):
    hub = await hub_factory(TYPED, plugins=[("types", Types())], entry_points=False)
    # The API lists them with the type's unit and name; min/max in YAML still override the range.
    sensors = json.loads((await fetch(hub.url + "/api/sensors")).body)["sensors"]
    assert [(s["type"], s["unit"], s["name"]) for s in sensors] == [
        ("dissolved_oxygen", "mg/L", "Dissolved oxygen"),
        ("co2", "ppm", "CO2"),
    ]
    assert (hub.registry.sensor(1).low, hub.registry.sensor(1).high) == (0, 20)
    assert hub.registry.sensor(2).high == 5000
    # The type's plausible range applies to clients too.
    client = await ws_client(hub, "/ws/sensor-data/")
    error = await client.request({"type": "sensor_data", "sensor_id": 1, "value": 25.0}, type="error")
    assert error["code"] == "INVALID_VALUE" and "(0 to 20," in error["message"]
    # MQTT discovery announces the type's Home Assistant device class.
    topics = Topics("smartanom", "test")
    assert sensor_config(hub.registry.sensor(2), "test", topics, device_availability=False, version="0")["device_class"] == "carbon_dioxide"
    assert "device_class" not in sensor_config(hub.registry.sensor(1), "test", topics, device_availability=False, version="0")
    errors = hub.plugins.records["types"].errors
    assert errors == [
        "register_sensor_types returned an unusable type: sensor type 'ph' is already provided by the hub",
        "register_sensor_types returned an unusable type: 'Bad Name': a sensor type's name is lower case letters, digits and underscores",
    ]


@pytest.mark.gen_test
async def test_a_sensor_type_no_plugin_provides_is_a_located_config_error(hub_factory):
    from smartanom import ConfigError

    with pytest.raises(ConfigError) as error:
        await hub_factory(TYPED, entry_points=False)
    assert "line 6: devices[0].sensors[0].type: 'dissolved_oxygen' is not a known sensor type" in str(error.value)


# --- on_reading, on_device_status -------------------------------------------------------


class Exporter:
    """What an InfluxDB or Prometheus exporter looks like: it only listens."""

    def __init__(self):
        self.readings, self.changes = [], []

    @hookimpl
    def on_reading(self, reading):
        self.readings.append((reading.sensor.id, reading.value))

    @hookimpl
    def on_device_status(self, change):
        self.changes.append((change.device.id, change.previous, change.status))


class Crashes:
    @hookimpl
    def on_reading(self, reading):
        raise RuntimeError("exporter down")


@pytest.mark.gen_test
async def test_hook_on_reading_and_on_device_status(hub_factory, caplog):
    exporter = Exporter()
    hub = await hub_factory(
        HUB.replace("type: ph}", "type: ph, max: 14}"), plugins=[("exporter", exporter), ("crashes", Crashes())], entry_points=False
    )
    assert hub.view.publish_reading(1, 6.1) and not hub.view.publish_reading(1, 15.0)  # the refused one never arrives
    for _ in range(30):
        hub.view.publish_reading(1, 6.2)
    assert exporter.readings == [(1, 6.1)] + [(1, 6.2)] * 30
    assert exporter.changes == [(1, DeviceStatus.INACTIVE, DeviceStatus.ACTIVE)]
    # Failing on every reading: reported, but neither the log nor the record grows without bound.
    errors = hub.plugins.records["crashes"].errors
    assert errors[-1] == "raised in on_reading: RuntimeError: exporter down" and len(errors) == 20
    assert len([r for r in caplog.records if "raised in on_reading" in r.getMessage()]) == 1



# --- register_routes ---------------------------------------------------------------------


class SummaryHandler(tornado.web.RequestHandler):
    def initialize(self, hub):
        self.hub = hub

    def get(self, sensor_id):
        sensor = self.hub.registry.sensor(int(sensor_id))
        self.finish({"sensor": sensor.name, "status": str(self.hub.device_status(sensor.device.id))})


class Pages:
    @hookimpl
    def register_routes(self, hub):
        return [
            (r"sensors/(\d+)", SummaryHandler, {"hub": hub}),
            ("broken", object),  # not a handler: reported, the good route still served
        ]


@pytest.mark.gen_test
async def test_hook_register_routes(hub_factory, monkeypatch):
    monkeypatch.setenv("SMARTANOM_TEST_TOKENS", "read:" + "r" * 32)
    hub = await hub_factory(
        HUB + "auth: {enabled: true, tokens_env: SMARTANOM_TEST_TOKENS}\n", plugins=[("pages", Pages())], entry_points=False
    )
    url = hub.url + "/plugins/pages/sensors/1"
    refused = await fetch(url)
    assert refused.code == 401 and json.loads(refused.body)["error"]["code"] == "UNAUTHORIZED"
    answer = await fetch(url, headers={"Authorization": "Bearer " + "r" * 32})
    assert answer.code == 200 and json.loads(answer.body) == {"sensor": "pH", "status": "inactive"}
    assert (await fetch(hub.url + "/sensors/1")).code == 404  # only under the plugin's prefix
    assert hub.plugins.records["pages"].errors == [
        "register_routes returned an unusable route: <class 'object'> is not a tornado.web.RequestHandler subclass"
    ]
