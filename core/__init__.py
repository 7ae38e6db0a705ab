"""SmarTanom Hub: the public surface for plugins.

A plugin imports only what `__all__` lists here; everything else in `core` is
private and may change. docs/writing-plugins.md is the guide.
"""

from smartanom.control.outputs import OutputContext, OutputError, OutputKind, OutputOptions
from smartanom.errors import ConfigError
from smartanom.events import DeviceStatus, DeviceStatusChanged, SensorReading
from smartanom.hookspecs import hookimpl
from smartanom.platform import Platform, PlatformOptions, PluginContext

__all__ = [
    "ConfigError",
    "DeviceStatus",
    "DeviceStatusChanged",
    "OutputContext",
    "OutputError",
    "OutputKind",
    "OutputOptions",
    "Platform",
    "PlatformOptions",
    "PluginContext",
    "SensorReading",
    "hookimpl",
]
