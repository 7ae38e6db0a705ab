"""`GET /metrics`: the hub's counters in the Prometheus text format.

Nothing on the road of a reading counts anything for Prometheus: `HubCollector`
reads the counters the hub keeps anyway (storage's accepted/stored/dropped, the
WebSocket fan-out's stats, each plugin instance's state and `ctx.stats`) when a
scraper asks, through prometheus_client's custom-collector interface. The only
thing measured for metrics alone is the event loop's lag (`LoopLag`), a timer
twice a second.

Same access rule as the JSON API (`api.JSONHandler.prepare`): with auth on, a
token of either role, as `Authorization: Bearer TOKEN` or `?token=TOKEN`
(docs/metrics.md shows a Prometheus scrape config for both).
"""

from __future__ import annotations

import asyncio
import collections
from importlib import metadata
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from smartanom.api import JSONHandler

if TYPE_CHECKING:
    from smartanom.hub import Hub

# Plugin instance states (core/hub.py InstanceState.state), each a 0/1 series.
STATES = ("starting", "running", "restarting", "finished", "stopped")
# Which `ctx.stats` counter is an instance's reads and which its errors. `reads`
# and `errors` are the names docs/writing-plugins.md asks for; the built-in
# plugins named theirs before that convention, and GET /api/plugins shows those names.
READS_KEYS = ("reads", "readings", "received")
ERRORS_KEYS = ("errors", "failed_reads", "bad_lines", "rejected")


class LoopLag:
    """How late the event loop runs a timer: the worst of the last minute, in seconds.

    A loop that is blocked (a slow handler, a plugin doing blocking I/O) delays
    every reading and every dashboard; this is the number that shows it.
    """

    INTERVAL = 0.5
    WINDOW = 120  # samples: one minute

    def __init__(self) -> None:
        self.samples: collections.deque[float] = collections.deque(maxlen=self.WINDOW)
        self._handle: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._schedule()

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    @property
    def worst(self) -> float:
        return max(self.samples, default=0.0)

    def _schedule(self) -> None:
        due = self._loop.time() + self.INTERVAL
        self._handle = self._loop.call_at(due, self._tick, due)

    def _tick(self, due: float) -> None:
        self.samples.append(max(0.0, self._loop.time() - due))
        self._schedule()


class HubCollector(Collector):
    """Builds every metric family from the hub's own state at scrape time."""

    def __init__(self, hub: "Hub"):
        self.hub = hub

    def collect(self):
        info = GaugeMetricFamily("smartanom_build_info", "The running hub's version (always 1)", labels=["version"])
        info.add_metric([_version()], 1)
        yield info
        if self.hub.started_at is not None:
            yield GaugeMetricFamily("smartanom_start_time_seconds", "When the hub started, in seconds since the epoch", value=self.hub.started_at)
        yield from self._readings()
        yield from self._storage()
        yield from self._websocket()
        yield from self._plugins()
        yield from self._alerts()
        lag = getattr(self.hub, "loop_lag", None)
        if lag is not None:
            yield GaugeMetricFamily("smartanom_event_loop_lag_seconds", "How late the event loop ran a timer, worst of the last minute", value=lag.worst)

    def _readings(self):
        storage, stats = self.hub.storage, self.hub.fanout.stats
        yield CounterMetricFamily("smartanom_readings_accepted", "Readings accepted onto the bus (plugins and WebSocket clients)", value=storage.accepted)
        yield CounterMetricFamily("smartanom_readings_stored", "Readings written to the database", value=storage.stored)
        dropped = CounterMetricFamily("smartanom_readings_dropped", "Accepted readings that could not be stored", labels=["reason"])
        # Storage drops only when the database cannot take readings and memory
        # (storage.max_pending) is full, or readings are still unwritten at shutdown.
        dropped.add_metric(["storage_unavailable"], storage.dropped)
        yield dropped
        refused = CounterMetricFamily("smartanom_websocket_refused", "WebSocket messages refused with an error reply, per error code", labels=["reason"])
        for code, n in sorted(stats.refused.items()):
            refused.add_metric([code], n)
        yield refused

    def _storage(self):
        storage = self.hub.storage
        yield GaugeMetricFamily("smartanom_storage_queue_length", "Readings accepted and not yet written", value=storage.pending)
        yield GaugeMetricFamily("smartanom_storage_lag_seconds", "Seconds since the storage writer last had nothing left to write", value=storage.lag)
        yield GaugeMetricFamily("smartanom_storage_ok", "1 while the database can be written, 0 while it is failing", value=1 if storage.error is None else 0)
        yield CounterMetricFamily("smartanom_storage_purged_rows", "Rows deleted by the retention purge (storage.keep_days)", value=storage.purged)

    def _websocket(self):
        fanout = self.hub.fanout
        stats = fanout.stats
        open_bytes = sum(_bytes_sent(conn) for conn in fanout.connections)
        yield GaugeMetricFamily("smartanom_websocket_clients", "Open WebSocket connections", value=len(fanout.connections))
        yield CounterMetricFamily("smartanom_websocket_sent_bytes", "Bytes written to WebSocket clients' sockets (handshakes included)", value=stats.bytes_sent + open_bytes)
        yield CounterMetricFamily("smartanom_websocket_closed_too_slow", "Clients closed because they did not read fast enough", value=stats.too_slow)

    def _alerts(self):
        engine = self.hub.alerts
        active = GaugeMetricFamily("smartanom_alerts_active", "Active alerts (firing or acknowledged), by severity", labels=["severity"])
        for severity in ("warning", "critical"):
            active.add_metric([severity], sum(1 for a in engine.active() if a.severity == severity))
        attempts = CounterMetricFamily("smartanom_alert_notifications", "Notification attempts, by result (docs/alerts.md)", labels=["result"])
        attempts.add_metric(["sent"], engine.notifier.sent)
        attempts.add_metric(["failed"], engine.notifier.failed)
        yield active
        yield attempts
        yield GaugeMetricFamily("smartanom_alert_notifications_pending", "Notices waiting to be sent or retried", value=engine.notifier.pending)

    def _plugins(self):
        labels = ["instance", "platform", "plugin"]
        state = GaugeMetricFamily("smartanom_plugin_instance_state", "1 for a plugin instance's current state", labels=labels + ["state"])
        restarts = CounterMetricFamily("smartanom_plugin_instance_restarts", "Restarts after a crash", labels=labels)
        reads = CounterMetricFamily("smartanom_plugin_instance_reads", "Successful reads (ctx.stats reads)", labels=labels)
        errors = CounterMetricFamily("smartanom_plugin_instance_errors", "Failed reads or refused input (ctx.stats errors)", labels=labels)
        other = GaugeMetricFamily("smartanom_plugin_instance_stat", "Every other number in the instance's ctx.stats (GET /api/plugins)", labels=labels + ["stat"])
        for instance in self.hub.instances.values():
            names = [instance.label, instance.platform, instance.plugin]
            for name in STATES:
                state.add_metric(names + [name], 1 if instance.state == name else 0)
            restarts.add_metric(names, instance.restarts)
            numbers = {k: v for k, v in instance.stats.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
            for family, keys in ((reads, READS_KEYS), (errors, ERRORS_KEYS)):
                key = next((k for k in keys if k in numbers), None)
                if key is not None:
                    family.add_metric(names, numbers.pop(key))
            for key, value in sorted(numbers.items()):
                other.add_metric(names + [key], value)
        yield from (state, restarts, reads, errors, other)


def make_registry(hub: "Hub") -> CollectorRegistry:
    """A registry of this hub's metrics alone (not prometheus_client's global one:
    a process may run several hubs, as the tests do)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(HubCollector(hub))
    return registry


class MetricsHandler(JSONHandler):
    """The Prometheus text format (OpenMetrics when the scraper asks for it);
    errors (401) are JSON like the rest of the API."""

    def initialize(self, auth, collectors: CollectorRegistry) -> None:
        super().initialize(auth)
        self.collectors = collectors

    def get(self) -> None:
        encode, content_type = choose_encoder(self.request.headers.get("Accept", ""))
        self.set_header("Content-Type", content_type)
        self.finish(encode(self.collectors))


def _version() -> str:
    try:
        return metadata.version("smartanom")
    except metadata.PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"


def _bytes_sent(conn) -> int:
    # Bytes the socket has taken so far (core/sendbuffer.py reads Tornado's counter).
    buffer = getattr(conn, "send_buffer", None)
    return buffer.sent if buffer is not None else 0
