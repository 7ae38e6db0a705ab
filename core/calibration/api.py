"""HTTP API of calibration and derived sensors (docs/api.md, docs/calibration.md).

GET  /api/calibration                   every calibrated (or configured) sensor: calibration, due state, session
GET  /api/calibration/{id}              one sensor, with its calibration history
POST /api/calibration/{id}              start a guided session {"standards": [...], "temperature": C}
POST /api/calibration/{id}/measure      the probe is in the standard: record it once stable
DELETE /api/calibration/{id}            cancel the session (nothing is applied), or dismiss a finished one
GET  /api/derived                       derived sensors and whether they are stale

Changes need a write token when auth is on, and `Content-Type: application/json`
(so that a web page elsewhere cannot send them as a plain form post).
"""

from __future__ import annotations

import asyncio
import json
import math

from smartanom.api import APIError, JSONHandler
from smartanom.auth import Role, token_from_request
from smartanom.calibration.fit import CalibrationError
from smartanom.calibration.flow import SessionError
from smartanom.calibration.service import CalibrationService
from smartanom.derived.service import DerivedSensors


class _Handler(JSONHandler):
    def initialize(self, auth, registry, calibration: CalibrationService | None = None, derived: DerivedSensors | None = None) -> None:
        super().initialize(auth, registry)  # the token check in prepare(), sensor_or_404
        self.calibration = calibration
        self.derived = derived

    def require_write(self) -> None:
        auth = self.auth
        if auth.enabled and auth.identify(token_from_request(self.request)).role is not Role.WRITE:
            raise APIError(403, "FORBIDDEN", "calibrating needs a write token; this one is read-only")
        if not self.request.headers.get("Content-Type", "").startswith("application/json"):
            raise APIError(415, "UNSUPPORTED_MEDIA_TYPE", "send 'Content-Type: application/json' (with {} as the body if there is nothing to say)")

    def body(self) -> dict:
        if not self.request.body.strip():
            return {}
        try:
            data = json.loads(self.request.body)
        except ValueError:
            raise APIError(400, "BAD_REQUEST", "the body is not valid JSON") from None
        if not isinstance(data, dict):
            raise APIError(400, "BAD_REQUEST", "the body must be a JSON object")
        return data


def _standards(data: dict) -> list[float] | None:
    value = data.get("standards")
    if value is None:
        return None
    if not isinstance(value, list) or not all(_number(v) for v in value):
        raise APIError(400, "INVALID_PARAMETER", "'standards' must be a list of numbers (the standards' true values, in the order you will use them)", "standards")
    return [float(v) for v in value]


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


class CalibrationListHandler(_Handler):
    def get(self) -> None:
        self.send_json({"sensors": [self.calibration.status(s) for s in self.calibration.tracked()]})


class CalibrationHandler(_Handler):
    async def get(self, sensor_id: str) -> None:
        sensor = self.sensor_or_404(sensor_id)
        history = await asyncio.get_running_loop().run_in_executor(None, self.calibration.store.history, sensor.id)
        self.send_json(dict(self.calibration.status(sensor), history=[c.as_dict() for c in history]))

    def post(self, sensor_id: str) -> None:
        sensor = self.sensor_or_404(sensor_id)
        self.require_write()
        data = self.body()
        unknown = set(data) - {"standards", "temperature"}
        if unknown:
            raise APIError(400, "INVALID_PARAMETER", f"unknown field(s) {sorted(unknown)}; accepted: standards, temperature", sorted(unknown)[0])
        temperature = data.get("temperature")
        if temperature is not None and not (_number(temperature) and 0 <= temperature <= 60):
            raise APIError(400, "INVALID_PARAMETER", "'temperature' is the standards' temperature in C (0 to 60)", "temperature")
        try:
            session = self.calibration.begin(sensor, _standards(data), temperature)
        except SessionError as exc:
            raise APIError(409, "CALIBRATION_IN_PROGRESS", str(exc)) from None
        except CalibrationError as exc:
            raise APIError(400, "INVALID_PARAMETER", str(exc), "standards") from None
        self.set_status(201)
        self.send_json(session.as_dict())

    def delete(self, sensor_id: str) -> None:
        sensor = self.sensor_or_404(sensor_id)
        self.require_write()
        try:
            session = self.calibration.cancel(sensor)
        except SessionError as exc:
            raise APIError(409, "CALIBRATION_SAVING", str(exc)) from None
        if session is None:
            raise APIError(404, "NO_SESSION", f"sensor {sensor.id} has no calibration session")
        self.send_json(session.as_dict())


class MeasureHandler(_Handler):
    def post(self, sensor_id: str) -> None:
        sensor = self.sensor_or_404(sensor_id)
        self.require_write()
        try:
            session = self.calibration.measure(sensor)
        except SessionError as exc:
            raise APIError(409, "CALIBRATION_STATE", str(exc)) from None
        self.send_json(session.as_dict())


class DerivedHandler(_Handler):
    def get(self) -> None:
        self.send_json({"derived": self.derived.status()})


def routes(hub) -> list:
    services = {"auth": hub.auth, "registry": hub.registry, "calibration": hub.calibration, "derived": hub.derived}
    return [
        (r"/api/calibration/?", CalibrationListHandler, services),
        (r"/api/calibration/([^/]+)/measure/?", MeasureHandler, services),
        (r"/api/calibration/([^/]+)/?", CalibrationHandler, services),
        (r"/api/derived/?", DerivedHandler, services),
    ]


def _op(summary: str, schema: dict, *, sensor: bool = True, errors: tuple[str, ...] = ()) -> dict:
    op = {"summary": summary, "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": schema}}}}}
    if sensor:
        op["parameters"] = [{"name": "sensor_id", "in": "path", "required": True, "schema": {"type": "integer"}, "description": "the sensor's id"}]
        errors = ("404", *errors)
    for code in errors:
        op["responses"][code] = {"$ref": "#/components/responses/Error"}
    return op


_SESSION = {
    "type": "object",
    "required": ["sensor_id", "kind", "state", "message", "standards", "points"],
    "properties": {
        "state": {"enum": ["waiting", "measuring", "unstable", "saving", "done", "rejected", "failed", "cancelled"]},
        "message": {"type": "string", "description": "what to do now, or how it ended (docs/calibration.md)"},
        "next_standard": {"type": ["number", "null"]},
        "progress": {"type": "object", "description": "while measuring: seconds, samples, last_raw, spread, spread_allowed"},
        "report": {"type": "object", "description": "after the last point: slope/offset, and for pH slope_percent, offset_mv, verdict"},
    },
}
_STATUS = {
    "type": "object",
    "required": ["sensor_id", "calibration", "due", "session"],
    "properties": {
        "calibration": {"type": ["object", "null"], "description": "the active calibration: id, created, kind, points, slope, offset, report"},
        "due": {"type": ["object", "null"], "description": "due, age_days, reminder_days, message; null when the sensor is never calibrated"},
        "session": {"oneOf": [_SESSION, {"type": "null"}]},
        "history": {"type": "array", "items": {"type": "object"}},
    },
}


def openapi_paths() -> dict:
    """This module's routes in core/openapi.py's description."""
    return {
        "/api/calibration": {"get": _op("Calibrated and configured sensors: active calibration, due state, session", {"type": "object", "required": ["sensors"], "properties": {"sensors": {"type": "array", "items": _STATUS}}}, sensor=False)},
        "/api/calibration/{sensor_id}": {
            "get": _op("One sensor's calibration, due state, session and calibration history", _STATUS),
            "post": _op("Start a guided calibration (write role; JSON body {standards, temperature})", _SESSION, errors=("400", "403", "409", "415")),
            "delete": _op("Cancel the session (nothing is applied) or dismiss a finished one (write role)", _SESSION, errors=("403", "409", "415")),
        },
        "/api/calibration/{sensor_id}/measure": {"post": _op("The probe is in the standard: record the point once stable (write role)", _SESSION, errors=("403", "409", "415"))},
        "/api/derived": {"get": _op("Derived sensors (TDS, VPD, DLI) and whether each is stale", {"type": "object", "required": ["derived"], "properties": {"derived": {"type": "array", "items": {"type": "object", "required": ["sensor_id", "kind", "inputs", "stale", "reason"]}}}}, sensor=False)},
    }
