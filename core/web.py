"""The Tornado application: every URL the hub serves, and nothing else."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import tornado.web

from smartanom import accesslog, api, metrics, openapi
from smartanom.alerts import api as alerts_api
from smartanom.calibration import api as calibration_api
from smartanom.websocket import StreamHandler
from smartanom.ws_commands import Commands

if TYPE_CHECKING:
    from smartanom.hub import Hub

STATIC = Path(__file__).parent / "static"


class PageHandler(tornado.web.RequestHandler):
    """Serves one static HTML page (no templates, no build step)."""

    def initialize(self, path: Path) -> None:
        self.path = path

    def get(self) -> None:
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.set_header("Cache-Control", "no-cache")
        self.finish(self.path.read_bytes())


def make_app(hub: "Hub", plugin_routes: list[tuple] = ()) -> tornado.web.Application:
    server = hub.config.server
    # The WebSocket streams' collaborators, handed over through Tornado's initialize.
    commands = Commands(hub.registry, hub.status, hub.accept_reading, lambda: hub.storage.backlogged)
    streams = {
        "fanout": hub.fanout, "registry": hub.registry, "commands": commands, "auth": hub.auth,
        "server": server, "auth_timeout": hub.config.auth.timeout,
    }
    # The API handlers' collaborators (core/api.py), likewise.
    auth = {"auth": hub.auth}
    registry = {**auth, "registry": hub.registry, "status": hub.status, "history": hub.history}
    routes = [
        (r"/ws/sensor-data/?", StreamHandler, {"scope": "all", **streams}),
        (r"/ws/device/([^/]+)/?", StreamHandler, {"scope": "device", **streams}),
        (r"/ws/sensor/([^/]+)/?", StreamHandler, {"scope": "sensor", **streams}),
        (r"/websocket-test/?", PageHandler, {"path": STATIC / "websocket-test.html"}),
        (r"/", PageHandler, {"path": STATIC / "dashboard.html"}),
        (r"/api/devices/?", api.DevicesHandler, registry),
        (r"/api/devices/([^/]+)/?", api.DeviceHandler, registry),
        (r"/api/sensors/?", api.SensorsHandler, registry),
        (r"/api/sensors/([^/]+)/?", api.SensorHandler, registry),
        (r"/api/sensors/([^/]+)/readings/?", api.ReadingsHandler, registry),
        (r"/api/plugins/?", api.PluginsHandler, {**auth, "records": hub.plugins.records, "instances": hub.instances}),
        (r"/api/health/?", api.HealthHandler, {
            **auth, "storage": hub.storage, "fanout": hub.fanout, "instances": hub.instances, "started_at": hub.started_at,
            "watchdog": hub.watchdog, "alerts": hub.alerts,
        }),
        (r"/api/openapi.json", openapi.OpenAPIHandler, auth),
        *alerts_api.routes(hub),
        *calibration_api.routes(hub),
        (r"/api(?:/.*)?", api.NotFoundHandler, auth),
        (r"/metrics", metrics.MetricsHandler, {**auth, "collectors": metrics.make_registry(hub)}),
        *plugin_routes,  # each under /plugins/<name>/ (core/plugin_routes.py)
    ]
    return tornado.web.Application(
        routes,
        # Frames up to 4x max_message_size are read and answered MESSAGE_TOO_BIG
        # (core/websocket.py); beyond that Tornado closes with 1009 unread.
        websocket_max_message_size=4 * server.max_message_size,
        websocket_ping_interval=server.ping_interval,
        websocket_ping_timeout=server.ping_timeout,
        static_path=str(STATIC),
        log_function=accesslog.log_request,  # tokens in URLs stay out of the log
    )
