"""A relay on a GPIO pin: gpiozero's DigitalOutputDevice behind the output driver interface.

gpiozero chooses the pin library (lgpio, RPi.GPIO, ...) and lets tests use its
MockFactory. The pin is claimed at start in the output's safe state, so the
relay never clicks to the wrong side while the hub starts; at stop it is
switched to the safe state and released.
"""

from __future__ import annotations

from pydantic import Field

from smartanom import OutputContext, OutputError, OutputOptions


class GpioRelayOptions(OutputOptions):
    pin: int = Field(ge=0, le=53, description="BCM (GPIO) number, not the header's pin number: GPIO17 is 17")
    # Most relay boards for the Pi switch on when the pin is LOW: set active_high: false for those.
    active_high: bool = True


class GpioRelay:
    def __init__(self, options: GpioRelayOptions, ctx: OutputContext):
        from gpiozero import DigitalOutputDevice  # here, not at import: check-config needs no GPIO library

        self.pin = options.pin
        self.device = DigitalOutputDevice(options.pin, active_high=options.active_high, initial_value=options.safe_state)

    async def set(self, on: bool) -> None:
        try:
            self.device.value = on
        except Exception as exc:  # gpiozero's errors (pin closed, no access)
            raise OutputError(f"GPIO{self.pin}: {exc}") from exc
        if bool(self.device.value) is not on:
            raise OutputError(f"GPIO{self.pin} did not take the new state")

    async def close(self) -> None:
        self.device.close()
