"""The simulated platform's task: sample the model every `interval` and publish."""

from __future__ import annotations

import asyncio
import time

from smartanom import PluginContext
from smartanom.builtin.simulated.config import SimulatedOptions
from smartanom.builtin.simulated.model import Simulator
from smartanom.builtin.simulated.outputs import tank_for
from smartanom.builtin.simulated.tank import Tank


async def run(ctx: PluginContext) -> None:
    options: SimulatedOptions = ctx.options
    wanted = set(options.sensors) if options.sensors is not None else None
    sensors = [(s.id, s.type) for s in ctx.device.sensors if wanted is None or s.id in wanted]
    tank = tank_for(ctx.shared, ctx.device.id, lambda: Tank(seed=options.seed, start=time.time())) if options.tank else None
    modelled = {s for s, kind in sensors if tank is not None and kind in ("ph", "ec", "water_level")}
    simulator = Simulator([s for s in sensors if s[0] not in modelled], options.seed, options.day_length)
    kinds = dict(sensors)
    ctx.log.info("%s: simulating %d sensors every %g s", ctx.label, len(sensors), options.interval)

    loop = asyncio.get_running_loop()
    next_at = loop.time()
    active_since = loop.time()
    dropout = options.dropout
    while True:
        if dropout and loop.time() - active_since >= dropout.every:
            ctx.log.info("%s: simulated dropout for %g s", ctx.label, dropout.duration)
            ctx.set_device_available(False, "simulated dropout")
            await asyncio.sleep(dropout.duration)
            active_since = next_at = loop.time()
        now = time.time()
        for sensor_id, value in simulator.sample(now):
            ctx.publish_reading(sensor_id, value, now)
        for sensor_id in modelled:
            ctx.publish_reading(sensor_id, tank.read(kinds[sensor_id], now), now)
        # Fixed-rate schedule: no drift from the time publishing takes.
        next_at += options.interval
        await asyncio.sleep(max(0.0, next_at - loop.time()))
