"""Sensor types from plugins: a clash between two plugins and an unknown device class
are caught at start-up, naming the plugin(s)."""

import pytest

from smartanom import SensorType, hookimpl
from smartanom.errors import PluginError
from smartanom.sensortypes import BUILTIN, HA_DEVICE_CLASSES

HUB = """
devices:
  - id: 1
    name: Tank
    sensors:
      - {id: 1, type: orp}
"""


def providing(*types):
    class Provider:
        @hookimpl
        def register_sensor_types(self):
            return list(types)

    return Provider()


ORP = SensorType("orp", "mV", "ORP", low=-2000, high=2000)


@pytest.mark.gen_test
async def test_two_plugins_defining_one_sensor_type_differently_is_a_start_up_error_naming_both(hub_factory):
    other = SensorType("orp", "V", "ORP", low=-2, high=2)
    with pytest.raises(PluginError) as error:
        await hub_factory(HUB, plugins=[("alpha", providing(ORP)), ("beta", providing(other))], entry_points=False)
    assert str(error.value) == (
        "sensor type 'orp' is provided differently by two plugins: alpha and beta; "
        "uninstall one of them or load only one with SMARTANOM_PLUGINS"
    )


@pytest.mark.gen_test
async def test_two_plugins_defining_one_sensor_type_identically_share_it(hub_factory):
    same = SensorType("orp", "mV", "ORP", low=-2000, high=2000)
    hub = await hub_factory(HUB, plugins=[("alpha", providing(ORP)), ("beta", providing(same))], entry_points=False)
    assert hub.registry.sensor(1).unit == "mV"
    assert hub.plugins.records["alpha"].errors == [] and hub.plugins.records["beta"].errors == []


@pytest.mark.gen_test
async def test_an_unknown_device_class_is_reported_against_the_plugin_and_the_type_left_out(hub_factory):
    typo = SensorType("co2", "ppm", "CO2", device_class="carbon_dioxid")
    hub = await hub_factory(HUB, plugins=[("gas", providing(ORP, typo, SensorType("lux2", "lux", device_class=None)))], entry_points=False)
    assert hub.registry.sensor(1).unit == "mV"  # the plugin's other types still load
    assert hub.plugins.records["gas"].errors == [
        "register_sensor_types returned an unusable type: 'co2': device_class 'carbon_dioxid' is not one of "
        "Home Assistant's sensor device classes (see https://www.home-assistant.io/integrations/sensor/#device-class), "
        "or None. Did you mean 'carbon_dioxide'?"
    ]


def test_the_hubs_own_types_use_home_assistant_device_classes():
    assert {t.device_class for t in BUILTIN} - {None} <= HA_DEVICE_CLASSES
