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
import logging
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
        # An outage lasts from the bus going down until a request completes on
        # it again (answered or not): a gateway that accepts the connection and
        # drops it at every request is one outage, backed off and logged once,
        # not a fresh one at every reconnection.
        self.outage = False
        self.delay = options.reconnect_delay
        self._back_off = False  # the bus went down again before any request completed
        self._back_off_seen = False  # ... at least once in this outage
        self.behind_logged = 0.0
        self.stats = ctx.stats
        # setdefault: counts go on across a restart of this task after a crash.
        for counter in ("reads", "failed_reads", "reconnects", "late_answers", "malformed_answers", "resyncs"):
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
        while True:
            if self._back_off:
                self._back_off = False
                await self._wait_to_reconnect()
            try:
                await self.bus.connect()
            except BusDown as exc:
                self._mark_bus_down(str(exc))
                self.ctx.log.debug("%s: %s; retrying in %g s", self.ctx.label, exc, self.delay)
                await self._wait_to_reconnect()
                continue
            was_down, self.bus_down = self.bus_down, False
            if was_down:
                self.stats["reconnects"] += 1
                # Once per outage; the outage ends when a request completes.
                level = logging.DEBUG if self._back_off_seen else logging.INFO
                self.ctx.log.log(level, "%s: reconnected to %s", self.ctx.label, self.bus.name)
            return was_down

    async def _wait_to_reconnect(self) -> None:
        await asyncio.sleep(self.delay)
        self.delay = min(self.delay * 2, self.options.reconnect_delay_max)

    def _bus_works(self) -> None:
        """A request completed on the bus (answered or timed out): any outage is over."""
        if self.outage:
            self.outage = self._back_off_seen = False
            self.delay = self.options.reconnect_delay
            self._show_failing()  # the bus's problem is over; a failing register's may not be

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
                self._bus_works()
                # ValueError: the registers decode to something that is not a
                # finite number (a NaN float32 from a probe in error, say).
                self.stats["failed_reads"] += 1  # every attempt, retries included
                self.stats["last_error"] = f"sensor {sensor.sensor} (slave {sensor.slave}): {exc}"
                if attempt < attempts:
                    continue
                self._mark_failing(sensor, str(exc), attempts)
                return
            self._bus_works()
            self.stats["reads"] += 1
            self._mark_ok(sensor)
            return

    def _count_bus_events(self) -> None:
        # The bus counts for its own life; a restarted task starts a new bus, hence the deltas.
        for counter, now in (("late_answers", self.bus.late_answers), ("malformed_answers", self.bus.malformed), ("resyncs", self.bus.resyncs)):
            seen = self._bus_counts.get(counter, 0)
            self.stats[counter] += now - seen
            self._bus_counts[counter] = now

    def _mark_failing(self, sensor: RegisterSensor, reason: str, attempts: int) -> None:
        if sensor.sensor in self.failing:
            return
        where = f"slave {sensor.slave} {sensor.register_type} register {sensor.address}"
        self.failing[sensor.sensor] = f"sensor {sensor.sensor} ({where}): {reason}"
        self._show_failing()
        self.ctx.log.warning("%s: sensor %d (%s) failed %d time(s): %s", self.ctx.label, sensor.sensor, where, attempts, reason)
        self.ctx.set_device_available(False, f"{self.ctx.label}: {where}: {reason}")

    def _mark_ok(self, sensor: RegisterSensor) -> None:
        if self.failing.pop(sensor.sensor, None) is not None:
            self._show_failing()
            self.ctx.log.info("%s: sensor %d (slave %d) answers again", self.ctx.label, sensor.sensor, sensor.slave)

    def _show_failing(self) -> None:
        # A probe that never answers is as much a problem as a dead bus: the
        # device may stay `active` on its other probes' readings, so without
        # this only the log would tell that one sensor gets no values.
        # set_problem also records the problem as last_error; here last_error
        # keeps its documented meaning, the latest failed read.
        last_error = self.stats.get("last_error")
        if self.failing:
            self.ctx.set_problem(f"{len(self.failing)} of {len(self.options.sensors)} register(s) failing: " + "; ".join(self.failing.values()))
        else:
            self.ctx.set_problem(None)
        self.stats["last_error"] = last_error

    def _mark_bus_down(self, reason: str) -> None:
        self.ctx.set_problem(reason)
        if not self.bus_down and self.outage:
            # Back, and down again before a single request completed: the same outage.
            self.bus_down = self._back_off = self._back_off_seen = True
            self.ctx.log.debug("%s: bus %s is down again: %s", self.ctx.label, self.bus.name, reason)
        elif not self.bus_down:
            self.bus_down = self.outage = True
            self.ctx.log.warning("%s: bus %s is down: %s; reconnecting with backoff", self.ctx.label, self.bus.name, reason)
            self.ctx.set_device_available(False, f"{self.ctx.label}: {reason}")
        self.bus.close()

    def _log_behind(self, now: float) -> None:
        if now - self.behind_logged > 60:
            self.behind_logged = now
            self.ctx.log.warning("%s: bus %s cannot keep up with the scan intervals; skipping missed scans", self.ctx.label, self.bus.name)
