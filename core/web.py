"""The Tornado application: every URL the hub serves, and nothing else."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import tornado.web

from smartanom import api, metrics, openapi
from smartanom.alerts import api as alerts_api
from smartanom.calibration import api as calibration_api
from smartanom.control import api as control_api
from smartanom.readings_batch import ManyReadingsHandler
from smartanom.websocket import StreamHandler
from smartanom.websurface import HubApplication, SafeStaticFileHandler, host_checker
from smartanom.ws_commands import Commands

if TYPE_CHECKING:
    from smartanom.hub import Hub

STATIC = Path(__file__).parent / "static"

# The pages' Content-Security-Policy: their own scripts and styles, WebSockets to
# this hub, and no framing (a framed test page could be clicked into sending commands).
# uPlot sets element styles, hence 'unsafe-inline' for styles only.
DASHBOARD_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
# The test page is one self-contained file (inline script and styles) and may
# connect to another hub's WebSocket URL typed into it.
TEST_PAGE_CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "connect-src 'self' ws: wss:; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


class PageHandler(tornado.web.RequestHandler):
    """Serves one static HTML page (no templates, no build step)."""

    def initialize(self, path: Path, csp: str = DASHBOARD_CSP) -> None:
        self.path = path
        self.csp = csp

    def get(self) -> None:
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.set_header("Cache-Control", "no-cache")
        self.set_header("Content-Security-Policy", self.csp)
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
    lane = api.HistoryLane()  # one for both history routes: raw pages and exports take turns
    routes = [
        (r"/ws/sensor-data/?", StreamHandler, {"scope": "all", **streams}),
        (r"/ws/device/([^/]+)/?", StreamHandler, {"scope": "device", **streams}),
        (r"/ws/sensor/([^/]+)/?", StreamHandler, {"scope": "sensor", **streams}),
        (r"/websocket-test/?", PageHandler, {"path": STATIC / "websocket-test.html", "csp": TEST_PAGE_CSP}),
        (r"/", PageHandler, {"path": STATIC / "dashboard.html"}),
        (r"/api/devices/?", api.DevicesHandler, registry),
        (r"/api/devices/([^/]+)/?", api.DeviceHandler, registry),
        (r"/api/sensors/?", api.SensorsHandler, registry),
        (r"/api/sensors/([^/]+)/?", api.SensorHandler, registry),
        (r"/api/sensors/([^/]+)/readings/?", api.ReadingsHandler, {**registry, "lane": lane}),
        (r"/api/readings/?", ManyReadingsHandler, {**registry, "lane": lane}),
        (r"/api/plugins/?", api.PluginsHandler, {
            **auth, "records": hub.plugins.records, "instances": hub.instances, "hub_view": hub.plugins.publishing,
        }),
        (r"/api/health/?", api.HealthHandler, {
            **auth, "storage": hub.storage, "fanout": hub.fanout, "instances": hub.instances, "started_at": hub.started_at,
            "watchdog": hub.watchdog, "alerts": hub.alerts, "watch": api.HealthWatch(),
        }),
        *control_api.routes(hub),
        (r"/api/openapi.json", openapi.OpenAPIHandler, auth),
        *alerts_api.routes(hub),
        *calibration_api.routes(hub),
        (r"/api(?:/.*)?", api.NotFoundHandler, auth),
        (r"/metrics", metrics.MetricsHandler, {**auth, "collectors": metrics.make_registry(hub)}),
        *plugin_routes,  # each under /plugins/<name>/ (core/plugin_routes.py)
    ]
    return HubApplication(
        routes,
        host_checker(server.allowed_hosts, server.host),
        # Frames up to 4x max_message_size are read and answered MESSAGE_TOO_BIG
        # (core/websocket.py); beyond that Tornado closes with 1009 unread.
        websocket_max_message_size=4 * server.max_message_size,
        websocket_ping_interval=server.ping_interval,
        websocket_ping_timeout=server.ping_timeout,
        static_path=str(STATIC),
        static_handler_class=SafeStaticFileHandler,
    )
