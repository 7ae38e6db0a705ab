"""The built-in `mqtt` platform: the hub on an MQTT broker (docs/mqtt.md).

Publishes readings and device status, announces sensors to Home Assistant,
and takes readings in from MQTT devices and from other hubs. Registered
through the `smartanom` entry-point group like any third-party plugin.
"""

from smartanom import Platform, hookimpl
from smartanom.builtin.mqtt.bridge import run
from smartanom.builtin.mqtt.config import MqttOptions
from smartanom.builtin.mqtt.switch import OUTPUT_KIND


@hookimpl
def register_platforms():
    return [
        Platform(
            name="mqtt",
            run=run,
            options=MqttOptions,
            needs_device=False,
            description="MQTT bridge: publish to a broker, Home Assistant discovery, MQTT sensors and edge hubs in",
        )
    ]


@hookimpl
def register_outputs():
    return [OUTPUT_KIND]
