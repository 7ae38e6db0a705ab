"""HTTP API of outputs: their state, the actuation record, and manual overrides.

GET    /api/outputs                    every output with state, override, and the dosing controllers
GET    /api/outputs/actuations         the record, newest first (?output=ID&limit=N&before=TIME)
POST   /api/outputs/{id}/override      {"state": "on"|"off", "duration": seconds}  (write role)
DELETE /api/outputs/{id}/override      back to the output's rule (write role)

Changes need `Content-Type: application/json` (as calibration's do), so that a
web page elsewhere cannot send them as a plain form post.

Thin handlers: the control loop (core/control/engine.py) decides; they shape JSON.
"""

from __future__ import annotations

import json

from smartanom.api import APIError, JSONHandler, bad_parameter, parse_time
from smartanom.auth import Role, token_from_request
from smartanom.control.engine import OverrideRefused
from smartanom.protocol import format_timestamp

MAX_ACTUATIONS = 1000


def routes(hub) -> list:
    services = {"auth": hub.auth, "control": hub.control}
    return [
        (r"/api/outputs/?", OutputsHandler, services),
        (r"/api/outputs/actuations/?", ActuationsHandler, services),
        (r"/api/outputs/([^/]+)/override/?", OverrideHandler, services),
    ]


class _ControlHandler(JSONHandler):
    def initialize(self, auth, control) -> None:
        super().initialize(auth)  # the token check in prepare()
        self.control = control

    def who(self, write: bool = False) -> str:
        """The caller's token name. A change needs a write token when auth is on, and
        `Content-Type: application/json`, so a page elsewhere cannot send it as a form post."""
        name = "anonymous"
        if self.auth.enabled:
            token = self.auth.identify(token_from_request(self.request))
            if write and token.role is not Role.WRITE:
                raise APIError(403, "FORBIDDEN", "switching outputs needs a token with the write role")
            name = token.name
        if write and not self.request.headers.get("Content-Type", "").startswith("application/json"):
            raise APIError(415, "UNSUPPORTED_MEDIA_TYPE", "send 'Content-Type: application/json'")
        return name

    def output_or_404(self, output_id: str):
        output = self.control.outputs.get(output_id)
        if output is None:
            known = ", ".join(self.control.outputs.outputs) or "none"
            raise APIError(404, "UNKNOWN_OUTPUT", f"no output with id {output_id!r} (outputs: {known}); see /api/outputs")
        return output


def output_json(output, control) -> dict:
    data = output.as_dict()
    data["changed_at"] = format_timestamp(output.changed_at) if output.changed_at else None
    override = control.overrides.get(output.id)
    data["override"] = None if override is None else dict(override.as_dict(), until=format_timestamp(override.until))
    data["controlled"] = output.id in control.driven()
    return data


class OutputsHandler(_ControlHandler):
    def get(self) -> None:
        status = self.control.status()
        for doser in status["dosing"]:
            doser["mixing_until"] = format_timestamp(doser["mixing_until"]) if doser["mixing_until"] else None
        self.send_json({
            "outputs": [output_json(o, self.control) for o in self.control.outputs.outputs.values()],
            "dry_run": status["dry_run"],
            "timezone": status["timezone"],
            "dosing": status["dosing"],
        })


class ActuationsHandler(_ControlHandler):
    def get(self) -> None:
        output_id = self.get_query_argument("output", None)
        if output_id is not None and self.control.outputs.get(output_id) is None:
            raise bad_parameter("output", f"no output with id {output_id[:64]!r}; see /api/outputs")
        text = self.get_query_argument("limit", "100")
        if not text.isdigit() or not 1 <= int(text) <= MAX_ACTUATIONS:
            raise bad_parameter("limit", f"must be a whole number from 1 to {MAX_ACTUATIONS}, got {text[:32]!r}")
        before = parse_time("before", self.get_query_argument("before", None))
        rows = self.control.journal.actuations(int(text), output_id, before)
        for row in rows:
            row["timestamp"] = format_timestamp(row.pop("ts"))
        self.send_json({"actuations": rows})


class OverrideHandler(_ControlHandler):
    async def post(self, output_id: str) -> None:
        by = self.who(write=True)
        self.output_or_404(output_id)
        try:
            body = json.loads(self.request.body or b"null")
        except ValueError:
            raise APIError(400, "BAD_REQUEST", "the body must be JSON: {\"state\": \"on\" or \"off\", \"duration\": seconds}") from None
        if not isinstance(body, dict) or body.get("state") not in ("on", "off"):
            raise APIError(400, "BAD_REQUEST", "'state' must be \"on\" or \"off\"")
        duration = body.get("duration")
        if isinstance(duration, bool) or not isinstance(duration, (int, float)):
            raise APIError(400, "BAD_REQUEST", "'duration' must be a number of seconds: an override always expires")
        try:
            await self.control.override(output_id, body["state"] == "on", float(duration), by)
        except OverrideRefused as exc:
            raise APIError(409, "OVERRIDE_REFUSED", str(exc)) from None
        self.send_json(output_json(self.control.outputs.get(output_id), self.control))

    async def delete(self, output_id: str) -> None:
        by = self.who(write=True)
        self.output_or_404(output_id)
        await self.control.clear_override(output_id, by)
        self.send_json(output_json(self.control.outputs.get(output_id), self.control))


_OBJECT = {"type": "object"}
_OUTPUT = {
    "type": "object",
    "required": ["id", "name", "type", "device_id", "state", "safe_state", "available", "source", "reason", "changed_at", "override", "controlled"],
    "properties": {
        "id": {"type": "string"},
        "name": {"type": "string"},
        "state": {"enum": ["on", "off", None]},
        "safe_state": {"enum": ["on", "off"]},
        "available": {"type": "boolean"},
        "source": {"type": "string", "examples": ["schedule", "rule", "dose", "manual", "interlock", "safe", "start"]},
        "override": {"type": ["object", "null"]},
        "controlled": {"type": "boolean", "description": "whether a schedule, rule or dosing controller drives it"},
    },
}


def _answer(schema: dict, description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_ERROR = {"$ref": "#/components/responses/Error"}
_OVERRIDE_BODY = {
    "required": True,
    "content": {"application/json": {"schema": {
        "type": "object", "required": ["state", "duration"],
        "properties": {"state": {"enum": ["on", "off"]}, "duration": {"type": "number", "exclusiveMinimum": 0, "description": "seconds; at most control.max_override"}},
    }}},
}

# Merged into /api/openapi.json by core/openapi.py.
OPENAPI_PATHS = {
    "/api/outputs": {
        "get": {
            "summary": "Every output with its state and override, and the dosing controllers",
            "responses": {"200": _answer({"type": "object", "required": ["outputs", "dry_run", "timezone", "dosing"],
                                          "properties": {"outputs": {"type": "array", "items": _OUTPUT}, "dry_run": {"type": "boolean"},
                                                         "timezone": {"type": "string"}, "dosing": {"type": "array", "items": _OBJECT}}}, "the outputs")},
        }
    },
    "/api/outputs/actuations": {
        "get": {
            "summary": "The actuation record, newest first: which output, on or off, and why",
            "parameters": [
                {"name": "output", "in": "query", "required": False, "schema": {"type": "string"}, "description": "only this output"},
                {"name": "limit", "in": "query", "required": False, "schema": {"type": "integer", "minimum": 1, "maximum": MAX_ACTUATIONS, "default": 100}, "description": "rows"},
                {"name": "before", "in": "query", "required": False, "schema": {"type": "string", "format": "date-time"}, "description": "only rows older than this (paging)"},
            ],
            "responses": {"200": _answer({"type": "object", "required": ["actuations"], "properties": {"actuations": {"type": "array", "items": _OBJECT}}}, "the record"), "400": _ERROR},
        }
    },
    "/api/outputs/{output_id}/override": {
        "post": {
            "summary": "Hold an output on or off for a time, whatever its rule says (write role)",
            "requestBody": _OVERRIDE_BODY,
            "responses": {"200": _answer(_OUTPUT, "the output"), "400": _ERROR, "403": _ERROR, "404": _ERROR, "415": _ERROR,
                          "409": _answer({"$ref": "#/components/schemas/Error"}, "refused: too long, or 'on' for a dosing pump")},
        },
        "delete": {
            "summary": "End an override: the output's rule (or its safe state) decides again (write role)",
            "responses": {"200": _answer(_OUTPUT, "the output"), "403": _ERROR, "404": _ERROR, "415": _ERROR},
        },
    },
}
