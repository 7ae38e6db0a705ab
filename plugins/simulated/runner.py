"""The simulated platform's task: sample the model every `interval` and publish."""

from __future__ import annotations

import asyncio
import time

from smartanom import PluginContext
from smartanom.builtin.simulated.config import SimulatedOptions
from smartanom.builtin.simulated.model import LIGHT_PEAK, PROFILES, Simulator
from smartanom.builtin.simulated.outputs import tank_for
from smartanom.builtin.simulated.tank import Tank


async def run(ctx: PluginContext) -> None:
    options: SimulatedOptions = ctx.options
    wanted = set(options.sensors) if options.sensors is not None else None
    # Derived sensors (computed by the hub) are not ours to publish.
    sensors = [(s.id, s.type) for s in ctx.device.sensors if (wanted is None or s.id in wanted) and not s.computed]
    unknown = [sid for sid, stype in sensors if stype not in PROFILES and stype not in LIGHT_PEAK]
    if unknown:
        ctx.log.warning("%s: no simulation for sensor(s) %s (their types have no model); not fed", ctx.label, unknown)
        sensors = [(sid, stype) for sid, stype in sensors if sid not in unknown]
    raw = {r.sensor: r for r in options.raw}
    tank = tank_for(ctx.shared, ctx.device.id, lambda: Tank(seed=options.seed, start=time.time())) if options.tank else None
    # With `tank: true` these come from the tank model that the simulated outputs act on.
    modelled = {sid: stype for sid, stype in sensors if tank is not None and stype in ("ph", "ec", "water_level")}
    simulator = Simulator([s for s in sensors if s[0] not in modelled], options.seed, options.day_length)
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
        samples = simulator.sample(now) + [(sid, tank.read(stype, now)) for sid, stype in modelled.items()]
        for sensor_id, value in samples:
            signal = raw.get(sensor_id)
            if signal is not None:
                standard = ctx.calibration_standard(sensor_id)
                value = signal.scale * (value if standard is None else standard) + signal.offset
            ctx.publish_reading(sensor_id, value, now)
        # Fixed-rate schedule: no drift from the time publishing takes.
        next_at += options.interval
        await asyncio.sleep(max(0.0, next_at - loop.time()))
