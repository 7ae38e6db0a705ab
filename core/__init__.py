"""SmarTanom Hub: the public surface for plugins.

A plugin imports only what `__all__` lists here; everything else in `smartanom` is
private and may change. docs/writing-plugins.md is the guide.
"""

from smartanom.control.outputs import OutputChanged, OutputContext, OutputError, OutputKind, OutputOptions, OverrideRequest
from smartanom.errors import ConfigError
from smartanom.events import AlertChanged, DeviceStatus, DeviceStatusChanged, SensorReading
from smartanom.hookspecs import hookimpl
from smartanom.hubview import HubView
from smartanom.platform import Platform, PlatformOptions, PluginContext
from smartanom.sensortypes import SensorType
from smartanom.throttle import LogThrottle
from smartanom.protocol import to_millis

__all__ = [
    "AlertChanged",
    "ConfigError",
    "DeviceStatus",
    "DeviceStatusChanged",
    "HubView",
    "LogThrottle",
    "OutputChanged",
    "OutputContext",
    "OutputError",
    "OutputKind",
    "OutputOptions",
    "OverrideRequest",
    "Platform",
    "PlatformOptions",
    "PluginContext",
    "SensorReading",
    "SensorType",
    "hookimpl",
    "to_millis",
]
