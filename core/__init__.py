"""SmarTanom Hub: the public surface for plugins.

A plugin imports only what `__all__` lists here; everything else in `core` is
private and may change. docs/writing-plugins.md is the guide.
"""

from smartanom.errors import ConfigError
from smartanom.events import DeviceStatus, DeviceStatusChanged, SensorReading
from smartanom.hookspecs import hookimpl
from smartanom.platform import Platform, PlatformOptions, PluginContext
from smartanom.protocol import to_millis

__all__ = [
    "ConfigError",
    "DeviceStatus",
    "DeviceStatusChanged",
    "Platform",
    "PlatformOptions",
    "PluginContext",
    "SensorReading",
    "hookimpl",
    "to_millis",
]
