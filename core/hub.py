"""The running hub: wires config, bus, storage, status, plugins and the web server.

A reading's road: a platform's task (or a WebSocket client) calls
`accept_reading` -> the bus -> storage (queued for the writer thread), the status
tracker, and the WebSocket fan-out, in that order.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import ssl
import time
from dataclasses import dataclass, field

import tornado.netutil

from smartanom.alerts.engine import AlertEngine
from smartanom.auth import Authenticator
from smartanom.bus import EventBus
from smartanom.calibration.latest import LatestReadings
from smartanom.calibration.service import CalibrationService
from smartanom.calibration.store import CalibrationStore
from smartanom.config import HubConfig, PluginInstanceConfig, reload_tokens
from smartanom.control import stream as output_stream
from smartanom.control.interlocks import BeingCalibrated, SensorFaultAlert, Uncalibrated
from smartanom.control.setup import build_control
from smartanom.derived.service import DerivedSensors
from smartanom.errors import ConfigError
from smartanom.events import SensorReading
from smartanom.history import History
from smartanom.hubview import HubView
from smartanom.metrics import LoopLag
from smartanom.platform import PluginContext
from smartanom.plugin_routes import collect_routes
from smartanom.protocol import CLOSE_GOING_AWAY
from smartanom.plugins import PluginHost
from smartanom.registry import Sensor
from smartanom.status import StatusTracker
from smartanom.storage import Storage
from smartanom.watchdog import LoopWatchdog, Stall
from smartanom.web import make_app
from smartanom.websocket import FanOut
from smartanom.websurface import MAX_HEADER_BYTES, HubHTTPServer, raise_open_files_limit

log = logging.getLogger("smartanom.hub")

# A crashed platform task is restarted after 1 s, doubling up to this; a task
# that ran this long before crashing starts again from 1 s.
MAX_RESTART_DELAY = 60.0
# How long stop() waits for cancelled platform tasks; one that swallows its
# cancellation is reported and left behind rather than hanging the shutdown.
STOP_TIMEOUT = 10.0
# Seconds a stopping hub waits for WebSocket clients to finish the closing handshake.
CLOSE_GRACE = 3.0
# File descriptors kept for the database, plugins' ports and sockets, and logs.
FD_RESERVE = 64
# Below this many connections a cap would refuse ordinary use; then only warn.
MIN_CONNECTIONS = 16


@dataclass
class InstanceState:
    label: str
    platform: str
    plugin: str
    state: str = "starting"  # running | restarting | finished | stopped
    restarts: int = 0
    last_error: str | None = None
    loop_stalls: int = 0  # times the event loop was held by this instance (core/watchdog.py)
    stats: dict = field(default_factory=dict)  # the running instance's PluginContext.stats

    def as_dict(self) -> dict:
        return dict(self.__dict__)


class Hub:
    def __init__(self, config: HubConfig, plugins: PluginHost):
        self.config = config
        self.plugins = plugins
        self.registry = config.build_registry()
        self.bus = EventBus()
        store = config.storage
        self.storage = Storage(
            store.path, store.flush_interval,
            max_pending=store.max_pending, keep_days=store.keep_days, purge_interval=store.purge_interval,
            recovery_path=store.recovery_path,
            rollups=store.rollups,
        )
        self.history = History(config.storage.path)  # reads for the HTTP API, off the loop
        self.status = StatusTracker(self.registry, self.bus)
        self.fanout = FanOut()
        self.alerts = AlertEngine(config, self.registry, self.bus, self.fanout, self.status)
        self.latest = LatestReadings()
        self.calibration = CalibrationService(self.registry, config.calibration, CalibrationStore(store.path), self.latest, alerts=self.alerts)
        self.derived = DerivedSensors(self.registry, config.derived, self.latest, self.accept_reading)
        self.auth = Authenticator(config.auth.enabled, config.tokens)
        self.watchdog = LoopWatchdog(config.watchdog.threshold, self._count_stall) if config.watchdog.enabled else None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.port: int | None = None
        self.started_at: float | None = None
        self.instances: dict[str, InstanceState] = {}
        self.view = HubView(self)  # what plugins get instead of this object
        # Objects a plugin's platform instances and outputs share (PluginContext.shared, OutputContext.shared).
        self.shared: dict = {}
        self.control = None  # smartanom.control.engine.Control, built at start
        self.loop_lag = LoopLag()  # for GET /metrics
        self._server: HubHTTPServer | None = None
        self._tasks: list[asyncio.Task] = []
        self._unsubscribers: list = []
        self._stopped = False

    @property
    def url(self) -> str:
        host = self.config.server.host
        shown = "127.0.0.1" if host in ("", "0.0.0.0") else ("[::1]" if host == "::" else host)
        scheme = "https" if self.config.server.ssl is not None else "http"
        return f"{scheme}://{shown}:{self.port}"

    def accept_reading(
        self, sensor: Sensor, value: float, timestamp: float | None, source: str = "",
        raw: float | None = None, calibration_id: int | None = None,
    ) -> None:
        """Put a validated reading on the bus. Call on the loop (plugins use PluginContext)."""
        self.bus.publish(SensorReading(sensor, value, time.time() if timestamp is None else timestamp, source, raw, calibration_id))

    def reload_tokens(self) -> bool:
        """Read the tokens again (SIGHUP). On a problem the old tokens stay; False."""
        if not self.config.auth.enabled:
            log.info("Token reload asked for, but auth is off")
            return False
        try:
            tokens = reload_tokens(self.config)
        except ConfigError as exc:
            log.error("Tokens not reloaded, the old ones stay in force: %s", exc)
            return False
        self.auth.replace(tokens)
        log.info("Tokens reloaded: %d in force (connections already open keep their role)", len(tokens))
        return True

    async def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        before, after = raise_open_files_limit()
        if after != before:
            log.info("Open-files limit raised from %d to %d", before, after)
        self.max_connections = self._connection_cap(after)
        self.bus.bind_loop(self.loop)
        await self.loop.run_in_executor(None, self.storage.open)
        self.storage.attach(self.bus)
        if self.watchdog is not None:
            self.watchdog.start()
        self.status.start()
        self.loop_lag.start(self.loop)
        self._unsubscribers = self.fanout.attach(self.bus) + self.plugins.listen(self.bus)
        self.control = build_control(
            self.config.control, self.config.outputs, self.plugins.output_kinds, self.bus, self.shared, self.config.storage.path
        )
        self.control.interlocks += [
            BeingCalibrated(self.calibration), SensorFaultAlert(self.alerts, self.registry), Uncalibrated(self.calibration, self.registry)
        ]
        self._unsubscribers.append(output_stream.attach(self.bus, self.fanout))
        await self.alerts.start()
        self._unsubscribers += [self.latest.attach(self.bus), self.derived.attach(self.bus)]
        await self.calibration.start()

        server = self.config.server
        sockets = tornado.netutil.bind_sockets(server.port, server.host or None)
        self.port = sockets[0].getsockname()[1]
        self.started_at = time.time()
        self._server = HubHTTPServer(
            make_app(self, collect_routes(self.plugins, self.view, self.auth)), xheaders=True, ssl_options=self._ssl_context(),
            idle_connection_timeout=server.idle_timeout, max_header_size=MAX_HEADER_BYTES,
            max_connections=self.max_connections, max_per_client=server.max_connections_per_client,
        )
        self._server.add_sockets(sockets)

        for issue in self.config.unavailable:
            log.error("Plugin entry not started: %s", issue)
        for instance in self.config.plugins:
            owner = self.plugins.platform_owner.get(instance.platform.name, "?")
            self.instances[instance.label] = InstanceState(instance.label, instance.platform.name, owner)
            self._tasks.append(self.loop.create_task(self._supervise(instance), name=f"plugin:{instance.label}"))
        await self.control.start()
        await self.plugins.call_each("on_startup", hub=self.view)

    async def stop(self) -> None:
        """Stop serving, stop plugins, close clients, flush storage. A second call does nothing."""
        if self._stopped:
            return
        self._stopped = True
        self.loop_lag.stop()
        if self._server is not None:
            self._server.stop()
        if self.control is not None:
            # Outputs to their safe state while the plugins that reach them still run.
            await self.control.stop()
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            _, stuck = await asyncio.wait(self._tasks, timeout=STOP_TIMEOUT)
            for task in stuck:
                label = task.get_name().removeprefix("plugin:")
                state = self.instances.get(label)
                owner = self.plugins.describe(state.plugin) if state else "?"
                log.error("Plugin instance %s (from %s) did not stop within %g s of being cancelled; left behind", label, owner, STOP_TIMEOUT)
        self._tasks.clear()
        for state in self.instances.values():
            state.state = "stopped"
        await self.plugins.call_each("on_shutdown", hub=self.view)
        self.fanout.outbox.flush()  # queued updates go out before the close frames
        for conn in tuple(self.fanout.connections):
            conn.close(CLOSE_GOING_AWAY, "hub shutting down")
        await self.status.stop()
        await self.calibration.stop()
        if self.watchdog is not None:
            await asyncio.get_running_loop().run_in_executor(None, self.watchdog.stop)
        await self.alerts.stop()  # after calibration, which may still resolve a reminder
        for unsubscribe in self._unsubscribers:
            unsubscribe()
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self.storage.close)
        # Let clients take what is still buffered for them and answer the close, so
        # every reading they sent is acknowledged before the process exits; a client
        # that does not read gets no more than CLOSE_GRACE seconds.
        deadline = loop.time() + CLOSE_GRACE
        while self.fanout.connections and loop.time() < deadline:
            await asyncio.sleep(0.05)
        if self._server is not None:
            await self._server.close_all_connections()
            self._server = None
        await asyncio.get_running_loop().run_in_executor(None, self.history.close)

    def _count_stall(self, stall: Stall) -> None:
        state = self.instances.get(stall.instance) if stall.instance else None
        if state is not None:
            state.loop_stalls += 1

    def _connection_cap(self, open_files: int) -> int:
        """server.max_connections, lowered to fit the open-files limit when it cannot:
        past the limit a connection fails with 'Too many open files' and nothing answers,
        where under the cap it gets a 503 at once."""
        configured = self.config.server.max_connections
        if open_files == resource.RLIM_INFINITY:
            return configured
        room = open_files - FD_RESERVE
        if configured and configured <= room:
            return configured
        if room >= MIN_CONNECTIONS:
            log.warning(
                "server.max_connections (%s) lowered to %d: the open-files limit is %d and the hub keeps %d for its own "
                "files. To allow more, raise the limit (LimitNOFILE= in the systemd unit, ulimit -n)",
                configured or "no cap", room, open_files, FD_RESERVE,
            )
            return room
        log.warning(
            "The open-files limit (%d) leaves almost no room for connections beside the hub's own %d files: "
            "past it connections fail with 'Too many open files'. Raise it (LimitNOFILE=, ulimit -n)", open_files, FD_RESERVE,
        )
        return configured

    def _ssl_context(self) -> ssl.SSLContext | None:
        settings = self.config.server.ssl
        if settings is None:
            return None
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(settings.certfile, settings.keyfile)
        return context

    async def _supervise(self, instance: PluginInstanceConfig) -> None:
        platform = instance.platform
        state = self.instances[instance.label]
        owner = state.plugin
        ctx = PluginContext(self, platform, instance.options, instance.label)
        state.stats = ctx.stats
        delay = 1.0
        while True:
            started = time.monotonic()
            state.state = "running"
            try:
                await platform.run(ctx)
                state.state = "finished"
                log.info("Plugin instance %s finished", instance.label)
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                state.last_error = f"{type(exc).__name__}: {exc}"
                state.state = "restarting"
                if time.monotonic() - started > MAX_RESTART_DELAY:
                    delay = 1.0
                log.error(
                    "Plugin instance %s (platform %s from %s) crashed: %s; restarting in %g s",
                    instance.label, platform.name, self.plugins.describe(owner), state.last_error, delay,
                    exc_info=exc,
                )
                ctx.set_device_available(False, f"{instance.label} crashed")
            await asyncio.sleep(delay)
            delay = min(delay * 2, MAX_RESTART_DELAY)
            state.restarts += 1
            log.warning("Restarting plugin instance %s (restart %d)", instance.label, state.restarts)
