"""register_outputs: a third party's output kind, configured, switched and recorded by a real hub;
an unusable kind is reported and the rest loads; two plugins with one type name is a start-up error."""

import pytest

from smartanom import OutputError, OutputKind, OutputOptions, hookimpl
from smartanom.errors import PluginError
from smartanom.testing import make_plugin_host

HUB = """
devices:
  - id: 1
    name: Tank
outputs:
  - {id: fan, name: Fan, type: relay_hat, device: 1, channel: 3}
"""


class RelayHatOptions(OutputOptions):
    channel: int


class RelayHat:
    """A plugin with one output kind; its drivers note what they were told."""

    def __init__(self):
        self.switched: list[tuple[int, bool]] = []
        self.broken = False

    @hookimpl
    def register_outputs(self):
        return [OutputKind("relay_hat", create=self.create, options=RelayHatOptions), "not a kind"]

    def create(self, options, ctx):
        hat = self

        class Driver:
            async def set(self, on):
                if hat.broken:
                    raise OutputError("HAT not answering on I2C")
                hat.switched.append((options.channel, on))

        return Driver()


@pytest.mark.gen_test
async def test_hook_register_outputs(hub_factory):
    plugin = RelayHat()
    hub = await hub_factory(HUB, plugins=[("relay_hat", plugin)], entry_points=False)
    assert plugin.switched == [(3, False)]  # safe state at start
    assert "unusable output kind: 'not a kind' is not a smartanom.OutputKind" in hub.plugins.records["relay_hat"].error
    await hub.control.override("fan", True, 60, "test")
    assert plugin.switched[-1] == (3, True)
    plugin.broken = True
    await hub.control.override("fan", False, 60, "test")
    fan = hub.control.outputs.get("fan")
    assert fan.available is False and fan.error == "OutputError: HAT not answering on I2C"
    plugin.broken = False
    await hub.stop()
    assert plugin.switched[-1] == (3, False)  # safe state at stop


def test_two_plugins_with_one_output_type_is_a_start_up_error():
    host = make_plugin_host([("first", RelayHat()), ("second", RelayHat())], entry_points=False)
    with pytest.raises(PluginError, match="output type 'relay_hat' is provided by (first|second) and by (first|second)"):
        host.collect_outputs()
