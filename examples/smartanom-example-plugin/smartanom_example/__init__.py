"""The hub's entry point into this plugin: one function per hook."""

import logging

from smartanom import Platform, SensorType, hookimpl
from smartanom_example.config import RandomWalkOptions
from smartanom_example.runner import run

log = logging.getLogger("smartanom_example")


@hookimpl
def register_platforms():
    return [
        Platform(
            name="random_walk",
            run=run,
            options=RandomWalkOptions,
            description="A sensor value that wanders between two bounds",
        )
    ]


@hookimpl
def register_sensor_types():
    # A kind of sensor the hub does not ship: a sensor's YAML may now say `type: dissolved_oxygen`.
    return [SensorType("dissolved_oxygen", "mg/L", "Dissolved oxygen", low=0, high=20)]


@hookimpl
def on_startup(hub):
    log.info("random_walk ready; %d devices configured", len(hub.registry.devices))


@hookimpl
async def on_shutdown(hub):
    log.info("random_walk stopped")
