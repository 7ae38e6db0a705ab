"""The built-in `gpio` output: a relay on a Raspberry Pi GPIO pin, through gpiozero.

Registered through the `smartanom` entry-point group like any third-party plugin.
"""

from smartanom import OutputKind, hookimpl
from smartanom.builtin.gpio.relay import GpioRelay, GpioRelayOptions


@hookimpl
def register_outputs():
    return [
        OutputKind(
            name="gpio",
            create=GpioRelay,
            options=GpioRelayOptions,
            description="A relay (or MOSFET) on a Raspberry Pi GPIO pin, through gpiozero",
        )
    ]
