"""The `modbus` output: a coil, or a holding register, written on a modbus instance's bus.

The write goes through the instance's own `ModbusBus`, so it takes its turn
with the polling reads and keeps the bus's quiet gap: an RS-485 line has one
master. A write with no usable answer raises OutputError; the hub then marks
the output unavailable and retries its safe state every control period.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from smartanom import OutputContext, OutputError, OutputKind, OutputOptions
from smartanom.builtin.modbus.bus import BusDown, ReadFailed


class ModbusOutputOptions(OutputOptions):
    modbus: str | None = Field(None, description="the `name:` of the modbus plugin instance whose bus to use (default: the only one)")
    slave: int = Field(ge=1, le=247)
    register_type: Literal["coil", "holding"] = "coil"
    address: int = Field(ge=0, le=65535)
    # Holding registers only: the values meaning on and off.
    on_value: int = Field(1, ge=0, le=65535)
    off_value: int = Field(0, ge=0, le=65535)

    @model_validator(mode="after")
    def _values(self):
        if self.on_value == self.off_value:
            raise ValueError("on_value and off_value must differ")
        if self.register_type == "coil" and (self.on_value, self.off_value) != (1, 0):
            raise ValueError("on_value/off_value apply to register_type: holding only (a coil is on or off)")
        return self


class ModbusOutput:
    def __init__(self, options: ModbusOutputOptions, ctx: OutputContext):
        self.options = options
        self.ctx = ctx

    async def set(self, on: bool) -> None:
        o = self.options
        value = o.on_value if on else o.off_value
        bus = self.ctx.instance_object("modbus", o.modbus, "modbus")  # the runner's ModbusBus
        try:
            await bus.write(o.slave, o.register_type, o.address, value)
        except (BusDown, ReadFailed) as exc:
            raise OutputError(f"slave {o.slave} {o.register_type} {o.address}: {exc}") from None


OUTPUT_KIND = OutputKind(
    name="modbus",
    create=ModbusOutput,
    options=ModbusOutputOptions,
    description="A relay behind a Modbus coil or holding register, on a modbus instance's bus",
)
