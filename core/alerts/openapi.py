"""The alert routes' part of /api/openapi.json (merged in by core/openapi.py)."""

from __future__ import annotations

_TIME = {"type": "string", "format": "date-time"}
_NULLABLE_TIME = {"type": ["string", "null"], "format": "date-time"}
_NUMBER = {"type": ["number", "null"]}
_ERROR = {"$ref": "#/components/responses/Error"}


def _json(schema: dict, description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


SCHEMAS = {
    "Alert": {
        "type": "object",
        "required": ["id", "key", "kind", "device_id", "sensor_id", "severity", "state", "value", "threshold",
                     "trigger", "message", "recommendation", "started_at", "acknowledged_at", "acknowledged_by", "resolved_at"],
        "properties": {
            "id": {"type": "integer"},
            "key": {"type": "string", "description": "the condition, stable across episodes", "examples": ["sensor_2_range"]},
            "kind": {"type": "string", "examples": ["range", "no_data", "inactive"]},
            "device_id": {"type": ["integer", "null"]},
            "sensor_id": {"type": ["integer", "null"], "description": "null for a device alert"},
            "severity": {"enum": ["warning", "critical"]},
            "state": {"enum": ["firing", "acknowledged", "resolved"]},
            "value": {**_NUMBER, "description": "the latest value (range alerts)"},
            "threshold": {**_NUMBER, "description": "the limit crossed"},
            "trigger": {"type": "string", "examples": ["below_min", "above_critical_max", "no_data", "inactive"]},
            "message": {"type": "string"},
            "recommendation": {"type": "string"},
            "started_at": _TIME,
            "acknowledged_at": _NULLABLE_TIME,
            "acknowledged_by": {"type": ["string", "null"]},
            "resolved_at": _NULLABLE_TIME,
            "notifications": {
                "type": "array",
                "description": "every notification attempt, in order",
                "items": {
                    "type": "object",
                    "required": ["at", "notice", "target", "attempt", "ok", "error"],
                    "properties": {
                        "at": _TIME,
                        "notice": {"enum": ["started", "escalated", "repeat", "resolved"]},
                        "target": {"type": "string", "description": "the Apprise URL, secrets masked"},
                        "attempt": {"type": "integer", "minimum": 1},
                        "ok": {"type": "boolean"},
                        "error": {"type": "string"},
                    },
                },
            },
        },
    },
    "AlertRule": {
        "type": "object",
        "required": ["key", "sensor_id", "device_id", "profile", "unit", "min", "max", "critical_min", "critical_max", "hysteresis", "for"],
        "properties": {
            "key": {"type": "string"}, "sensor_id": {"type": "integer"}, "device_id": {"type": "integer"},
            "profile": {"type": ["string", "null"]}, "unit": {"type": "string"},
            "min": _NUMBER, "max": _NUMBER, "critical_min": _NUMBER, "critical_max": _NUMBER,
            "hysteresis": {"type": "number"}, "for": {"type": "number", "description": "pending period, seconds"},
        },
    },
}

PATHS = {
    "/api/alerts": {
        "get": {
            "summary": "Active alerts (firing or acknowledged), or past ones with ?state=resolved or all",
            "parameters": [
                {"name": "state", "in": "query", "required": False, "schema": {"enum": ["active", "resolved", "all"], "default": "active"}, "description": "which alerts"},
                {"name": "limit", "in": "query", "required": False, "schema": {"type": "integer", "minimum": 1, "default": 100}, "description": "at most this many, newest first"},
            ],
            "responses": {
                "200": _json({"type": "object", "required": ["alerts"], "properties": {"alerts": {"type": "array", "items": {"$ref": "#/components/schemas/Alert"}}}}, "the alerts"),
                "400": _ERROR,
            },
        }
    },
    "/api/alerts/rules": {
        "get": {
            "summary": "Each sensor's good and critical range, pending period and hysteresis",
            "responses": {"200": _json({"type": "object", "required": ["rules"], "properties": {"rules": {"type": "array", "items": {"$ref": "#/components/schemas/AlertRule"}}}}, "the rules")},
        }
    },
    "/api/alerts/{alert_id}/ack": {
        "post": {
            "summary": "Acknowledge an active alert (a write token when auth is on); repeats stop, it still resolves by itself",
            "parameters": [{"name": "alert_id", "in": "path", "required": True, "schema": {"type": "integer"}, "description": "the alert's id"}],
            "requestBody": {"required": False, "content": {"application/json": {"schema": {"type": "object", "properties": {"by": {"type": "string", "description": "who (defaults to the token's name)"}}}}}},
            "responses": {"200": _json({"$ref": "#/components/schemas/Alert"}, "the acknowledged alert"), "400": _ERROR, "403": _ERROR, "404": _ERROR},
        }
    },
}
