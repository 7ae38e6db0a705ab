"""The built-in `simulated` platform: believable hydroponic readings without hardware.

Registered through the `smartanom` entry-point group like any third-party plugin.
"""

from smartanom import Platform, hookimpl
from smartanom.builtin.simulated.config import SimulatedOptions
from smartanom.builtin.simulated.outputs import OUTPUT_KIND
from smartanom.builtin.simulated.runner import run


@hookimpl
def register_platforms():
    return [
        Platform(
            name="simulated",
            run=run,
            options=SimulatedOptions,
            description="Simulated pH, EC/TDS, temperature, humidity, level and light sensors",
        )
    ]


@hookimpl
def register_outputs():
    return [OUTPUT_KIND]
