"""The `simulated` output kind: pumps and valves of the simulated tank.

An output of `type: simulated` with `device: N` acts on the tank of device N,
the same tank whose pH, EC and level the `simulated` platform instance of that
device reads when its `tank:` option is on. Both reach it through the hub's
shared dict, so neither has to start first.
"""

from __future__ import annotations

import time
from typing import Literal

from pydantic import Field

from smartanom import OutputContext, OutputKind, OutputOptions
from smartanom.builtin.simulated.tank import Tank


class SimulatedOutputOptions(OutputOptions):
    device: int = Field(description="the simulated device whose tank this acts on")
    role: Literal["ph_down", "ph_up", "nutrient", "topoff", "none"] = "none"


def tank_for(shared: dict, device_id: int, factory=Tank) -> Tank:
    return shared.setdefault(("simulated", "tank", device_id), factory())


class SimulatedOutput:
    def __init__(self, options: SimulatedOutputOptions, ctx: OutputContext, now=time.time):
        self.role = options.role
        self.tank = tank_for(ctx.shared, options.device, lambda: Tank(start=now()))
        self.now = now

    async def set(self, on: bool) -> None:
        self.tank.set(self.role, on, self.now())


OUTPUT_KIND = OutputKind(
    name="simulated",
    create=SimulatedOutput,
    options=SimulatedOutputOptions,
    description="A pump or valve of the simulated tank (pH-down/up, nutrient, top-off)",
)
