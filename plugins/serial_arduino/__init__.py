"""The built-in `serial_arduino` platform: sensors on an Arduino or ESP32 over USB serial.

Registered through the `smartanom` entry-point group like any third-party plugin.
`parser` holds the line protocol, `port` the serial I/O, `runner` the task that
ties them to the hub, `relay` the relay output; the sketch for the board is in `arduino/`.
"""

from smartanom import Platform, hookimpl
from smartanom.builtin.serial_arduino.config import SerialArduinoOptions
from smartanom.builtin.serial_arduino.relay import OUTPUT_KIND
from smartanom.builtin.serial_arduino.runner import run


@hookimpl
def register_platforms():
    return [
        Platform(
            name="serial_arduino",
            run=run,
            options=SerialArduinoOptions,
            description="Sensors on an Arduino/ESP32 printing readings over USB serial",
        )
    ]


@hookimpl
def register_outputs():
    return [OUTPUT_KIND]
