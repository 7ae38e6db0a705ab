"""SmarTanom Hub: the public surface for plugins.

A plugin imports only what `__all__` lists here; everything else in `core` is
private and may change. docs/writing-plugins.md is the guide.
"""

from core.errors import ConfigError
from core.events import DeviceStatus, DeviceStatusChanged, SensorReading
from core.hookspecs import hookimpl
from core.platform import Platform, PlatformOptions, PluginContext

__all__ = [
    "ConfigError",
    "DeviceStatus",
    "DeviceStatusChanged",
    "Platform",
    "PlatformOptions",
    "PluginContext",
    "SensorReading",
    "hookimpl",
]
