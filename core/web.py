"""The Tornado application: every URL the hub serves, and nothing else."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import tornado.web

from smartanom import accesslog, api, metrics, openapi
from smartanom.calibration import api as calibration_api
from smartanom.websocket import StreamHandler

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


def make_app(hub: "Hub") -> tornado.web.Application:
    server = hub.config.server
    routes = [
        (r"/ws/sensor-data/?", StreamHandler, {"hub": hub, "scope": "all"}),
        (r"/ws/device/([^/]+)/?", StreamHandler, {"hub": hub, "scope": "device"}),
        (r"/ws/sensor/([^/]+)/?", StreamHandler, {"hub": hub, "scope": "sensor"}),
        (r"/websocket-test/?", PageHandler, {"path": STATIC / "websocket-test.html"}),
        (r"/", PageHandler, {"path": STATIC / "dashboard.html"}),
        (r"/api/devices/?", api.DevicesHandler, {"hub": hub}),
        (r"/api/devices/([^/]+)/?", api.DeviceHandler, {"hub": hub}),
        (r"/api/sensors/?", api.SensorsHandler, {"hub": hub}),
        (r"/api/sensors/([^/]+)/?", api.SensorHandler, {"hub": hub}),
        (r"/api/sensors/([^/]+)/readings/?", api.ReadingsHandler, {"hub": hub}),
        (r"/api/plugins/?", api.PluginsHandler, {"hub": hub}),
        (r"/api/health/?", api.HealthHandler, {"hub": hub}),
        (r"/api/openapi.json", openapi.OpenAPIHandler, {"hub": hub}),
        *calibration_api.routes(hub),
        (r"/api(?:/.*)?", api.NotFoundHandler, {"hub": hub}),
        (r"/metrics", metrics.MetricsHandler, {"hub": hub, "registry": metrics.make_registry(hub)}),
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
