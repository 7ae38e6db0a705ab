"""The `serial_relay` output: relays on the Arduino, switched over the serial_arduino instance's port.

Protocol (docs/serial-arduino.md, "Relays"): the hub writes `!relay N on` or
`!relay N off`; the sketch switches and answers `!ok relay N on|off`, or
`!err ...`. Lines starting with `!` are protocol, never readings. While the
port is open the hub also writes `!ping` every `KEEPALIVE` seconds; the sketch
puts every relay in its safe state when it has heard nothing for its
RELAY_TIMEOUT_MS, so a hub that crashes or a cable that comes out cannot
leave a pump running.
"""

from __future__ import annotations

import asyncio

from pydantic import Field

from smartanom import OutputContext, OutputError, OutputKind, OutputOptions

# Seconds between keepalives; the sketch's RELAY_TIMEOUT_MS must be well above it.
KEEPALIVE = 5.0


class SerialRelayOptions(OutputOptions):
    serial: str | None = Field(None, description="the `name:` of the serial_arduino instance whose port to use (default: the only one)")
    relay: int = Field(ge=1, le=16, description="the relay's number in the sketch's RELAY_PINS (1 = the first)")
    confirm_timeout: float = Field(3.0, gt=0, le=60)


class RelayLink:
    """One serial_arduino instance's side of the relay protocol."""

    def __init__(self, log) -> None:
        self.log = log
        self._write = None  # bytes -> None while the port is open
        self._waiting: dict[bytes, list[asyncio.Future]] = {}
        self._keepalive: asyncio.Task | None = None

    def attach(self, write) -> None:
        self._write = write
        self._keepalive = asyncio.get_running_loop().create_task(self._ping(), name="serial-relay-keepalive")

    def detach(self, why: str) -> None:
        self._write = None
        if self._keepalive is not None:
            self._keepalive.cancel()
            self._keepalive = None
        for futures in self._waiting.values():
            for future in futures:
                if not future.done():
                    future.set_exception(OutputError(f"serial port lost before the Arduino answered: {why}"))
        self._waiting.clear()

    async def _ping(self) -> None:
        while True:
            await asyncio.sleep(KEEPALIVE)
            if self._write is not None:
                self._write(b"!ping\n")

    def accept(self, line: bytes) -> None:
        """A `!` line from the Arduino."""
        text = line.strip()
        if text.startswith(b"!ok "):
            for future in self._waiting.get(text[4:], []):
                if not future.done():
                    future.set_result(None)
        elif text.startswith(b"!err"):
            self.log.warning("Arduino refused a relay command: %s", text.decode("ascii", "replace"))
            for futures in self._waiting.values():
                for future in futures:
                    if not future.done():
                        future.set_exception(OutputError(f"Arduino answered {text.decode('ascii', 'replace')}"))

    async def command(self, relay: int, on: bool, timeout: float) -> None:
        if self._write is None:
            raise OutputError("the serial port is not open")
        body = f"relay {relay} {'on' if on else 'off'}".encode()
        future = asyncio.get_running_loop().create_future()
        futures = self._waiting.setdefault(body, [])
        futures.append(future)
        try:
            self._write(b"!" + body + b"\n")
            await asyncio.wait_for(future, timeout)
        except asyncio.TimeoutError:
            raise OutputError(f"no acknowledgement of relay {relay} within {timeout:g} s (is the relay sketch loaded?)") from None
        finally:
            if future in futures:
                futures.remove(future)


class SerialRelay:
    def __init__(self, options: SerialRelayOptions, ctx: OutputContext):
        self.options = options
        self.ctx = ctx

    async def set(self, on: bool) -> None:
        link: RelayLink = self.ctx.instance_object("serial_arduino", self.options.serial, "serial")
        await link.command(self.options.relay, on, self.options.confirm_timeout)


OUTPUT_KIND = OutputKind(
    name="serial_relay",
    create=SerialRelay,
    options=SerialRelayOptions,
    description="A relay on the Arduino of a serial_arduino instance, acknowledged by the sketch",
)
