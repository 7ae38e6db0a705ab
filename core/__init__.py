"""SmarTanom Hub: the public surface for plugins.

A plugin imports only what `__all__` lists here; everything else in `core` is
private and may change. docs/writing-plugins.md is the guide.
"""

from smartanom.errors import ConfigError
from smartanom.events import AlertChanged, DeviceStatus, DeviceStatusChanged, SensorReading
from smartanom.hookspecs import hookimpl
from smartanom.platform import Platform, PlatformOptions, PluginContext

__all__ = [
    "AlertChanged",
    "ConfigError",
    "DeviceStatus",
    "DeviceStatusChanged",
    "Platform",
    "PlatformOptions",
    "PluginContext",
    "SensorReading",
    "hookimpl",
]
