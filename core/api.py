"""JSON over HTTP: the registry with live status, and the plugins.

Handlers are thin: they read from the hub and shape JSON. Errors are
{"error": {"code": ..., "message": ...}} with a matching HTTP status.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING

import tornado.web

from core.auth import token_from_request
from core.protocol import format_timestamp

if TYPE_CHECKING:
    from core.hub import Hub
    from core.registry import Device, Sensor


class JSONHandler(tornado.web.RequestHandler):
    def initialize(self, hub: "Hub") -> None:
        self.hub = hub

    def prepare(self) -> None:
        # With auth on, every API route needs a token of either role (core/auth.py decides).
        auth = self.hub.auth
        if auth.enabled and auth.identify(token_from_request(self.request)) is None:
            raise tornado.web.HTTPError(401, "a valid token is required: send 'Authorization: Bearer TOKEN' or ?token=TOKEN")

    def set_default_headers(self) -> None:
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.set_header("Cache-Control", "no-store")

    def send_json(self, data) -> None:
        self.finish(json.dumps(data))

    def write_error(self, status_code: int, **kwargs) -> None:
        code = {400: "BAD_REQUEST", 401: "UNAUTHORIZED", 404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED"}.get(status_code, "INTERNAL_ERROR")
        message = self._reason if status_code != 500 else "internal error; see the hub's log"
        if status_code == 401:
            self.set_header("WWW-Authenticate", 'Bearer realm="smartanom"')
        exc = kwargs.get("exc_info", (None, None))[1]
        if isinstance(exc, tornado.web.HTTPError) and exc.log_message:
            message = exc.log_message % exc.args if exc.args else exc.log_message
        self.finish(json.dumps({"error": {"code": code, "message": message}}))


def sensor_json(sensor: "Sensor") -> dict:
    return {"id": sensor.id, "type": sensor.type, "unit": sensor.unit, "name": sensor.name, "device_id": sensor.device.id}


def device_json(hub: "Hub", device: "Device") -> dict:
    seen = hub.status.last_seen.get(device.id)
    return {
        "id": device.id,
        "name": device.name,
        "status": hub.status.status[device.id].value,
        "last_reading": format_timestamp(seen) if seen is not None else None,
        "offline_after": device.offline_after,
        "sensors": [sensor_json(s) for s in device.sensors],
    }


class DevicesHandler(JSONHandler):
    def get(self) -> None:
        self.send_json({"devices": [device_json(self.hub, d) for d in self.hub.registry.devices.values()]})


class DeviceHandler(JSONHandler):
    def get(self, device_id: str) -> None:
        device = self.hub.registry.device(int(device_id))
        if device is None:
            raise tornado.web.HTTPError(404, "no device with id %s", device_id)
        self.send_json(device_json(self.hub, device))


class PluginsHandler(JSONHandler):
    def get(self) -> None:
        self.send_json(
            {
                "plugins": [r.as_dict() for r in self.hub.plugins.records.values()],
                "instances": [s.as_dict() for s in self.hub.instances.values()],
            }
        )


class HealthHandler(JSONHandler):
    """For monitoring probes: 200 when all is well, 503 when storage is failing or a plugin is crash-looping."""

    def get(self) -> None:
        hub, storage, stats = self.hub, self.hub.storage, self.hub.fanout.stats
        instances = [s.as_dict() for s in hub.instances.values()]
        problems = []
        if storage.error is not None:
            problems.append(storage.error)
        problems += [f"plugin instance {i['label']} is {i['state']}: {i['last_error']}" for i in instances if i["state"] == "restarting"]
        started = hub.started_at
        self.set_status(503 if problems else 200)
        self.send_json(
            {
                "status": "degraded" if problems else "ok",
                "problems": problems,
                "started_at": format_timestamp(started) if started else None,
                "uptime": round(time.time() - started, 3) if started else 0.0,
                "plugins": instances,
                "clients": len(hub.fanout.connections),
                "readings": {
                    "accepted": storage.accepted,
                    "stored": storage.stored,
                    "dropped": storage.dropped,
                    "pending": storage.pending,
                },
                "storage": {
                    "path": str(storage.path),
                    "ok": storage.error is None,
                    "error": storage.error,
                    "lag": round(storage.lag, 3),
                    "purged": storage.purged,
                },
                "websocket": {
                    "errors": stats.errors,
                    "rate_limited": stats.rate_limited,
                    "unauthorized": stats.unauthorized,
                    "too_slow": stats.too_slow,
                },
            }
        )
