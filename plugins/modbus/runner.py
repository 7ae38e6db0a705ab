"""The modbus platform's task: poll every configured register on one bus, forever.

One task per bus, so requests on a bus never overlap and independent buses
never wait for each other. Each sensor has its own fixed-rate schedule; the
task serves whichever is due first. A read that fails `retries` + 1 times
marks the device inactive (once per failure episode, logged once); a lost
connection is retried with doubling backoff. A failed read is never
published: the sensor simply has no new value until the probe answers again.
Counters for GET /api/plugins (`instances[].stats`) live in `ctx.stats`.
"""

from __future__ import annotations

import asyncio
import heapq
import time

from smartanom import PluginContext
from smartanom.builtin.modbus.bus import BusDown, ModbusBus, ReadFailed, quiet_pymodbus_logging
from smartanom.builtin.modbus.config import ModbusOptions, RegisterSensor
from smartanom.builtin.modbus.decoding import decode, to_value


async def run(ctx: PluginContext) -> None:
    options: ModbusOptions = ctx.options
    quiet_pymodbus_logging()
    bus = ModbusBus(options)
    poller = _Poller(ctx, options, bus)
    ctx.shared[("modbus", ctx.label)] = bus  # modbus outputs write through it (output.py)
    try:
        await poller.run()
    finally:
        ctx.shared.pop(("modbus", ctx.label), None)
        bus.close()


class _Poller:
    def __init__(self, ctx: PluginContext, options: ModbusOptions, bus: ModbusBus):
        self.ctx = ctx
        self.options = options
        self.bus = bus
        self.failing: dict[int, str] = {}  # sensor id -> why its last read failed
        self.bus_down = False
        self.behind_logged = 0.0
        self.stats = ctx.stats
        # setdefault: counts go on across a restart of this task after a crash.
        for counter in ("reads", "failed_reads", "reconnects", "late_answers", "malformed_answers"):
            self.stats.setdefault(counter, 0)
        self.stats.setdefault("last_error", None)
        self._bus_counts: dict[str, int] = {}

    async def run(self) -> None:
        ctx, options = self.ctx, self.options
        loop = asyncio.get_running_loop()
        ctx.log.info("%s: polling %d register(s) on %s (%s)", ctx.label, len(options.sensors), self.bus.name, options.transport)
        start = loop.time()
        # (due time, position, sensor): position breaks ties in config order.
        queue = [(start, i, s) for i, s in enumerate(options.sensors)]
        heapq.heapify(queue)
        while True:
            due, position, sensor = queue[0]
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            if not self.bus.connected:
                if await self._connect():
                    # Back after an outage: read everything now, then resume the
                    # schedule (not a burst of the scans missed meanwhile).
                    now = loop.time()
                    queue = [(now, p, s) for _d, p, s in sorted(queue)]  # sorted: still a heap
                continue  # time has passed: look again at what is due
            heapq.heappop(queue)
            await self._poll(sensor)
            self._count_bus_events()
            # Fixed rate; a sensor that fell more than a whole interval behind
            # (an overloaded bus, slow retries) skips the missed scans.
            due += sensor.interval
            now = loop.time()
            if due < now - sensor.interval:
                self._log_behind(now)
                due = now
            heapq.heappush(queue, (due, position, sensor))

    async def _connect(self) -> bool:
        """Connect, waiting with doubling backoff while the bus is unreachable.

        Returns whether the bus had been down (rather than just not opened yet).
        """
        delay = self.options.reconnect_delay
        while True:
            try:
                await self.bus.connect()
            except BusDown as exc:
                self._mark_bus_down(str(exc))
                self.ctx.log.debug("%s: %s; retrying in %g s", self.ctx.label, exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.options.reconnect_delay_max)
                continue
            was_down, self.bus_down = self.bus_down, False
            self.ctx.set_problem(None)
            if was_down:
                self.stats["reconnects"] += 1
                self.ctx.log.info("%s: reconnected to %s", self.ctx.label, self.bus.name)
            return was_down

    async def _poll(self, sensor: RegisterSensor) -> None:
        attempts = self.options.retries + 1
        for attempt in range(1, attempts + 1):
            try:
                registers = await self.bus.read(sensor.slave, sensor.register_type, sensor.address, sensor.count)
                raw = decode(registers, sensor.data_type, sensor.words, sensor.byte_order)
                value = to_value(raw, sensor.scale, sensor.offset, sensor.precision)
                self.ctx.publish_reading(sensor.sensor, value, time.time())
            except BusDown as exc:
                self._mark_bus_down(str(exc))
                return
            except (ReadFailed, ValueError) as exc:
                # ValueError: the registers decode to something that is not a
                # finite number (a NaN float32 from a probe in error, say).
                self.stats["failed_reads"] += 1  # every attempt, retries included
                self.stats["last_error"] = f"sensor {sensor.sensor} (slave {sensor.slave}): {exc}"
                if attempt < attempts:
                    continue
                self._mark_failing(sensor, str(exc), attempts)
                return
            self.stats["reads"] += 1
            self._mark_ok(sensor)
            return

    def _count_bus_events(self) -> None:
        # The bus counts for its own life; a restarted task starts a new bus, hence the deltas.
        for counter, now in (("late_answers", self.bus.late_answers), ("malformed_answers", self.bus.malformed)):
            seen = self._bus_counts.get(counter, 0)
            self.stats[counter] += now - seen
            self._bus_counts[counter] = now

    def _mark_failing(self, sensor: RegisterSensor, reason: str, attempts: int) -> None:
        if sensor.sensor in self.failing:
            return
        self.failing[sensor.sensor] = reason
        where = f"slave {sensor.slave} {sensor.register_type} register {sensor.address}"
        self.ctx.log.warning("%s: sensor %d (%s) failed %d time(s): %s", self.ctx.label, sensor.sensor, where, attempts, reason)
        self.ctx.set_device_available(False, f"{self.ctx.label}: {where}: {reason}")

    def _mark_ok(self, sensor: RegisterSensor) -> None:
        if self.failing.pop(sensor.sensor, None) is not None:
            self.ctx.log.info("%s: sensor %d (slave %d) answers again", self.ctx.label, sensor.sensor, sensor.slave)

    def _mark_bus_down(self, reason: str) -> None:
        self.ctx.set_problem(reason)
        if not self.bus_down:
            self.bus_down = True
            self.ctx.log.warning("%s: bus %s is down: %s; reconnecting with backoff", self.ctx.label, self.bus.name, reason)
            self.ctx.set_device_available(False, f"{self.ctx.label}: {reason}")
        self.bus.close()

    def _log_behind(self, now: float) -> None:
        if now - self.behind_logged > 60:
            self.behind_logged = now
            self.ctx.log.warning("%s: bus %s cannot keep up with the scan intervals; skipping missed scans", self.ctx.label, self.bus.name)
