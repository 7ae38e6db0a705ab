"""The platform's task: one reading every `interval` seconds until cancelled."""

import asyncio

from smartanom import PluginContext
from smartanom_example.walk import RandomWalk


async def run(ctx: PluginContext) -> None:
    options = ctx.options
    walk = RandomWalk(options.start, options.step, options.low, options.high, options.seed)
    ctx.log.info("%s: feeding sensor %d every %g s", ctx.label, options.sensor, options.interval)
    try:
        while True:
            ctx.publish_reading(options.sensor, walk.next())
            await asyncio.sleep(options.interval)
    finally:
        # Runs on cancellation too: release hardware here (close ports, sockets).
        ctx.log.info("%s: stopped", ctx.label)
