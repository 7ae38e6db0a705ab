"""The serial_arduino platform's task: keep the port open, turn lines into readings.

Lifecycle of one instance: open the port (retrying with backoff while it is
busy or forbidden, with one clear log message per distinct problem), read
lines until the port fails (USB unplugged), mark the device inactive, and
start over. A port that is missing is watched for instead (looking for a path
costs nothing), so a replugged Arduino is read again within a second or so.
While the port is unavailable the instance reports it as its `problem`
(GET /api/plugins, /api/health). Bad lines are counted, and logged at most
once a minute per kind of problem; nothing a sketch prints can stop the reader.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter

from smartanom import LogThrottle, PluginContext
from smartanom.builtin.serial_arduino.config import SerialArduinoOptions
from smartanom.builtin.serial_arduino.parser import BAD_VALUE, TOO_LONG, UNKNOWN_KEY, LineError, LineSplitter, TooLong, parse_line
from smartanom.builtin.serial_arduino.port import PortUnavailable, SerialConnection
from smartanom.builtin.serial_arduino.relay import RelayLink

# At most one bad-line warning per this many seconds (the rest are counted in it).
BAD_LINE_LOG_EVERY = 60.0
# An open failure that does not change is repeated in the log this often, not at every retry.
OPEN_FAILURE_REMIND_EVERY = 600.0
SHOWN_BYTES = 80
# How often a missing port's path is looked for (a stat call: free).
MISSING_POLL = 0.25


async def run(ctx: PluginContext) -> None:
    options: SerialArduinoOptions = ctx.options
    relays = RelayLink(ctx.log)
    ctx.shared[("serial_arduino", ctx.label)] = relays  # for serial_relay outputs (relay.py)
    try:
        await _serve(ctx, options, relays)
    finally:
        relays.detach("the hub is stopping")
        ctx.shared.pop(("serial_arduino", ctx.label), None)


async def _serve(ctx: PluginContext, options: SerialArduinoOptions, relays: RelayLink) -> None:
    lines = LineHandler(ctx, options, relays)
    delay = options.reconnect_min
    # An open failure is logged when it changes, and repeated only every
    # OPEN_FAILURE_REMIND_EVERY while it stays the same.
    open_failures = LogThrottle(OPEN_FAILURE_REMIND_EVERY)
    keys = ", ".join(f"{k}->{v}" for k, v in options.sensors.items())
    ctx.log.info("%s: reading %s at %d baud for device %s (%s)", ctx.label, options.port, options.baudrate, options.device, keys)
    while True:
        try:
            conn = await SerialConnection.open(options, lines.feed)
        except PortUnavailable as exc:
            ctx.set_problem(str(exc))
            if open_failures.allow(str(exc)):
                # A missing port is watched for, not retried on a timer: say so.
                then = "Opening it as soon as it appears." if exc.missing else f"Retrying, at least every {options.reconnect_max:g} s."
                ctx.log.error("%s: %s. %s", ctx.label, exc, then)
            else:
                ctx.log.debug("%s: still unavailable: %s", ctx.label, exc)
            if exc.missing:
                await _wait_for_path(options.port)
            else:
                await asyncio.sleep(delay)
                delay = min(delay * 2, options.reconnect_max)
            continue

        open_failures = LogThrottle(OPEN_FAILURE_REMIND_EVERY)  # connected: the next failure is news
        ctx.set_problem(None)
        shown = options.port if conn.real_path == options.port else f"{options.port} (-> {conn.real_path})"
        ctx.log.info("%s: opened serial port %s", ctx.label, shown)
        lines.start()
        relays.attach(conn.write)
        try:
            why = await conn.wait_lost()
        finally:
            relays.detach("port lost")
            await conn.close()
        ctx.set_device_available(False, f"serial port {options.port} lost: {why}")
        ctx.set_problem(f"serial port {options.port} lost: {why}")
        ctx.log.warning(
            "%s: lost serial port %s (%s) after %d readings; device %s is inactive until it is back. Reconnecting.",
            ctx.label, shown, why, lines.readings, options.device,
        )
        # A port that worked retries quickly; one that fails at once keeps backing off.
        if lines.readings:
            delay = options.reconnect_min
        if not os.path.exists(options.port):
            continue  # unplugged: watch for it to come back rather than back off
        await asyncio.sleep(delay)
        delay = min(delay * 2, options.reconnect_max)


async def _wait_for_path(path: str) -> None:
    """Until `path` exists again (a replug; udev recreates the node and its by-id link)."""
    while not os.path.exists(path):
        await asyncio.sleep(MISSING_POLL)
    # udev sets the node's group and mode just after creating it; opening in that
    # instant fails with "permission denied" and would start the long backoff.
    await asyncio.sleep(MISSING_POLL)


class LineHandler:
    """Bytes from one connection -> readings on the bus, and counts of what was not."""

    def __init__(self, ctx: PluginContext, options: SerialArduinoOptions, relays: RelayLink | None = None):
        self.ctx = ctx
        self.options = options
        self.relays = relays
        self.bad = BadLineLog(ctx)
        self.readings = 0
        self.splitter = LineSplitter(options.max_line_length)

    def start(self) -> None:
        """A fresh port: drop its first (likely partial) line, count afresh."""
        self.splitter = LineSplitter(self.options.max_line_length)
        self.readings = 0

    def feed(self, data: bytes) -> None:
        # Called by the transport on the loop: an exception here would only
        # reach asyncio's handler, so every surprise is logged and reading goes on.
        for item in self.splitter.feed(data):
            try:
                if isinstance(item, TooLong):
                    self.bad.report(TOO_LONG, item.head, f"over {self.options.max_line_length} bytes, dropped up to the next newline")
                else:
                    self._line(item)
            except Exception as exc:  # noqa: BLE001 - see above
                self.bad.report(f"{type(exc).__name__}: {exc}", item if isinstance(item, bytes) else item.head)

    def _line(self, raw: bytes) -> None:
        if raw.startswith(b"!"):
            # The relay protocol's answers (relay.py), not readings.
            if self.relays is not None:
                self.relays.accept(raw)
            return
        try:
            parsed = parse_line(raw, require_checksum=self.options.checksum == "required")
        except LineError as exc:
            self.bad.report(exc.kind, raw, exc.detail)
            return
        if parsed is None:
            return
        now = time.time()
        for key, value in parsed.values.items():
            sensor_id = self.options.sensors.get(key)
            if sensor_id is None:
                self.bad.report(UNKNOWN_KEY, raw, f"'{key}' (mapped keys: {', '.join(self.options.sensors)})")
                continue
            if not self.ctx.publish_reading(sensor_id, value, now):
                continue  # out of the sensor's range: counted and logged by the hub
            self.readings += 1
            self.ctx.stats["readings"] = self.ctx.stats.get("readings", 0) + 1
        for key, text in parsed.bad_values.items():
            self.bad.report(BAD_VALUE, raw, f"{key}: {text!r} is not a finite number")


class BadLineLog:
    """Counts bad lines by kind; logs the first of each kind, then at most one per kind per BAD_LINE_LOG_EVERY.

    Kinds are kept apart so the boot banner an Arduino prints after a reset
    does not hide the first checksum error (a bad cable) for a minute.
    """

    def __init__(self, ctx: PluginContext):
        self.ctx = ctx
        self.counts: Counter[str] = Counter()
        self._log = LogThrottle(BAD_LINE_LOG_EVERY)

    def report(self, kind: str, raw: bytes, detail: str = "") -> None:
        self.counts[kind] += 1
        # Shown in GET /api/plugins and /api/health, so a flaky cable is visible without the log.
        self.ctx.stats["bad_lines"] = self.ctx.stats.get("bad_lines", 0) + 1
        if not self._log.allow(kind):  # each kind on its own: the first of each is logged at once
            return
        unreported = self._log.skipped
        since = f"; {unreported} more of this kind not shown since the last report" if unreported else ""
        totals = ", ".join(f"{k}: {n}" for k, n in self.counts.most_common())
        self.ctx.log.warning(
            "%s: ignored serial input (%s%s): %s%s (totals %s)",
            self.ctx.label, kind, f", {detail}" if detail else "", show(raw), since, totals,
        )


def show(raw: bytes) -> str:
    """A line as it can be logged safely: escaped, and cut if long."""
    if len(raw) <= SHOWN_BYTES:
        return repr(raw)
    return f"{raw[:SHOWN_BYTES]!r}... ({len(raw)} bytes)"
