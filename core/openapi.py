"""The OpenAPI 3.1 description of the HTTP API, served at /api/openapi.json.

Written by hand next to the handlers it describes (core/api.py); tests/test_openapi.py
keeps it true by calling every route and checking each answer against the schema here.
"""

from __future__ import annotations

from smartanom import api, history
from smartanom.alerts import openapi as alerts_openapi
from smartanom.control.api import OPENAPI_PATHS as OUTPUT_PATHS
from smartanom.calibration import api as calibration_api

_TIME = {"type": "string", "format": "date-time", "examples": ["2025-09-11T15:30:00Z"]}
_NULLABLE_TIME = {"type": ["string", "null"], "format": "date-time"}


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict, description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_ERROR = {"$ref": "#/components/responses/Error"}

_COUNT = {"type": "integer", "minimum": 0}

SCHEMAS = {
    "Health": {
        "type": "object",
        "required": ["status", "problems", "started_at", "uptime", "plugins", "clients", "readings", "storage", "websocket"],
        "properties": {
            "status": {"enum": ["ok", "degraded"]},
            "problems": {"type": "array", "items": {"type": "string"}},
            "started_at": _NULLABLE_TIME,
            "uptime": {"type": "number", "description": "seconds"},
            "plugins": {"type": "array", "items": {"type": "object"}},
            "clients": _COUNT,
            "readings": {
                "type": "object",
                "required": ["accepted", "stored", "dropped", "pending"],
                "properties": {"accepted": _COUNT, "stored": _COUNT, "dropped": _COUNT, "pending": _COUNT},
            },
            "storage": {
                "type": "object",
                "required": ["path", "ok", "error", "lag", "purged"],
                "properties": {
                    "path": {"type": "string"},
                    "ok": {"type": "boolean"},
                    "error": {"type": ["string", "null"]},
                    "lag": {"type": "number", "description": "seconds the oldest unwritten reading has waited"},
                    "purged": _COUNT,
                },
            },
            "websocket": {"type": "object", "additionalProperties": _COUNT},
            "alerts": {
                "type": "object",
                "description": "active alerts, notification attempts sent, failed and waiting (docs/alerts.md)",
                "required": ["active", "notifications", "store_error"],
                "properties": {"active": _COUNT, "notifications": {"type": "object", "additionalProperties": _COUNT}, "store_error": {"type": ["string", "null"]}},
            },
            "loop": {
                "type": ["object", "null"],
                "description": "event-loop stalls seen by the watchdog (null when watchdog.enabled is false)",
                "properties": {
                    "threshold": {"type": "number"},
                    "stalls": _COUNT,
                    "longest": {"type": "number", "description": "seconds"},
                    "last": {"type": ["object", "null"]},
                },
            },
        },
    },
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {
                    "code": {"type": "string", "examples": ["INVALID_PARAMETER", "UNKNOWN_SENSOR"]},
                    "message": {"type": "string"},
                    "parameter": {"type": "string", "description": "the query parameter at fault (400 only)"},
                },
            }
        },
    },
    "Sensor": {
        "type": "object",
        "required": ["id", "type", "unit", "name", "device_id"],
        "properties": {
            "id": {"type": "integer"},
            "type": {"type": "string", "examples": ["ph"]},
            "unit": {"type": "string", "examples": ["ph"]},
            "name": {"type": "string"},
            "device_id": {"type": "integer"},
        },
    },
    "Reading": {
        "type": "object",
        "required": ["timestamp", "value"],
        "properties": {
            "timestamp": _TIME,
            "value": {"type": "number"},
            "raw": {"type": ["number", "null"], "description": "with calibration=true: the uncalibrated value (null: value is as sent)"},
            "calibration_id": {"type": ["integer", "null"], "description": "with calibration=true: the calibration it was made under (GET /api/calibration/{sensor_id})"},
        },
    },
    "SensorWithLatest": {
        "allOf": [_ref("Sensor")],
        "type": "object",
        "required": ["latest"],
        "properties": {"latest": {"oneOf": [_ref("Reading"), {"type": "null"}], "description": "the newest stored reading"}},
    },
    "Device": {
        "type": "object",
        "required": ["id", "name", "status", "last_reading", "offline_after", "sensors"],
        "properties": {
            "id": {"type": "integer"},
            "name": {"type": "string"},
            "status": {"enum": ["active", "inactive", "maintenance"]},
            "last_reading": {**_NULLABLE_TIME, "description": "when the hub last received a reading from it (since start)"},
            "offline_after": {"type": "number", "description": "seconds without a reading before it turns inactive"},
            "sensors": {"type": "array", "items": _ref("Sensor")},
        },
    },
    "Bucket": {
        "type": "object",
        "required": ["timestamp", "min", "mean", "max", "count"],
        "properties": {
            "timestamp": {**_TIME, "description": "start of the bucket"},
            "min": {"type": "number"},
            "mean": {"type": "number"},
            "max": {"type": "number"},
            "count": {"type": "integer", "minimum": 1},
        },
    },
    "ReadingsPage": {
        "type": "object",
        "required": ["sensor_id", "unit", "order", "bucket", "next"],
        "properties": {
            "sensor_id": {"type": "integer"},
            "unit": {"type": "string"},
            "order": {"enum": ["desc", "asc"]},
            "bucket": {"enum": [*history.BUCKETS, None]},
            "readings": {"type": "array", "items": _ref("Reading"), "description": "without 'bucket'"},
            "buckets": {"type": "array", "items": _ref("Bucket"), "description": "with 'bucket'"},
            "next": {"type": ["string", "null"], "description": "URL of the next page; null on the last page"},
        },
        "oneOf": [{"required": ["readings"]}, {"required": ["buckets"]}],
    },
    "ManyReadings": {
        "type": "object",
        "required": ["order", "bucket", "sensors"],
        "properties": {
            "order": {"enum": ["desc", "asc"]},
            "bucket": {"enum": [*history.BUCKETS, None]},
            "sensors": {
                "type": "array",
                "items": _ref("ReadingsPage"),
                "description": "per sensor, what /api/sensors/{sensor_id}/readings answers; its 'next' continues there",
            },
        },
    },
}


def _id(name: str, what: str) -> dict:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "integer"}, "description": f"the {what}'s id"}


def _query(name: str, schema: dict, description: str) -> dict:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


READINGS_PARAMETERS = [
    _query("since", {"type": "string", "format": "date-time"}, "oldest time included (ISO 8601; no offset means UTC)"),
    _query("until", {"type": "string", "format": "date-time"}, "first time excluded (ISO 8601; no offset means UTC)"),
    _query(
        "limit",
        {"type": "integer", "minimum": 1, "maximum": api.MAX_LIMIT, "default": api.DEFAULT_LIMIT},
        "readings (or buckets) per page; a CSV without it is the whole range in one response",
    ),
    _query("order", {"enum": ["desc", "asc"], "default": "desc"}, "desc: newest first; asc: oldest first"),
    _query("bucket", {"enum": list(history.BUCKETS)}, "min/mean/max per bucket of this width instead of raw readings"),
    _query("format", {"enum": ["json", "csv"], "default": "json"}, "csv is also chosen by 'Accept: text/csv'"),
    _query("cursor", {"type": "string"}, "where to continue: copied from the 'next' link of the previous page (opaque; only valid for the same sensor and bucket)"),
    _query(
        "calibration", {"enum": ["true", "false"], "default": "false"},
        "true: each raw reading also has 'raw' (what the hardware said; null if the value was not calibrated) and 'calibration_id'",
    ),
    _query("token", {"type": "string"}, "access token when auth is on (as on every route; the Authorization header is preferred)"),
]


def spec() -> dict:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "SmarTanom Hub HTTP API",
            "version": "1",
            "description": "Devices, sensors and stored sensor history. Live data: the WebSocket API (docs/websocket.md).",
        },
        "paths": {
            "/api/devices": {
                "get": {
                    "summary": "Every device with its status and sensors",
                    "responses": {"200": _json({"type": "object", "required": ["devices"], "properties": {"devices": {"type": "array", "items": _ref("Device")}}}, "the devices")},
                }
            },
            "/api/devices/{device_id}": {
                "get": {
                    "summary": "One device",
                    "parameters": [_id("device_id", "device")],
                    "responses": {"200": _json(_ref("Device"), "the device"), "404": _ERROR},
                }
            },
            "/api/sensors": {
                "get": {
                    "summary": "Every sensor with its latest stored reading",
                    "responses": {"200": _json({"type": "object", "required": ["sensors"], "properties": {"sensors": {"type": "array", "items": _ref("SensorWithLatest")}}}, "the sensors")},
                }
            },
            "/api/sensors/{sensor_id}": {
                "get": {
                    "summary": "One sensor with its latest stored reading",
                    "parameters": [_id("sensor_id", "sensor")],
                    "responses": {"200": _json(_ref("SensorWithLatest"), "the sensor"), "404": _ERROR},
                }
            },
            "/api/sensors/{sensor_id}/readings": {
                "get": {
                    "summary": "Stored readings of one sensor, raw or downsampled, as JSON or CSV",
                    "description": (
                        "Pages of at most 'limit' rows; the 'next' field (and the Link header, for CSV too) "
                        "gives the URL of the following page. With 'bucket', each row is the min/mean/max "
                        "of the readings in one bucket, aligned to multiples of the width in UTC."
                    ),
                    "parameters": [_id("sensor_id", "sensor"), *READINGS_PARAMETERS],
                    "responses": {
                        "200": {
                            "description": "one page",
                            "headers": {"Link": {"schema": {"type": "string"}, "description": '<next page URL>; rel="next", when there is one'}},
                            "content": {
                                "application/json": {"schema": _ref("ReadingsPage")},
                                "text/csv": {"schema": {"type": "string"}, "example": "timestamp,value\r\n2025-09-11T15:30:00Z,6.1\r\n"},
                            },
                        },
                        "400": _ERROR,
                        "404": _ERROR,
                    },
                }
            },
            "/api/readings": {
                "get": {
                    "summary": "The first page of several sensors' readings or buckets in one answer (a dashboard opening)",
                    "description": (
                        "The same query for each sensor in 'sensors' (default: every sensor). Each sensor's "
                        "'next' continues on /api/sensors/{sensor_id}/readings. JSON only."
                    ),
                    "parameters": [
                        _query("sensors", {"type": "string", "pattern": "^[0-9]+(,[0-9]+)*$"}, "comma-separated sensor ids"),
                        *[p for p in READINGS_PARAMETERS if p["name"] not in ("format", "cursor")],
                    ],
                    "responses": {"200": _json(_ref("ManyReadings"), "one page per sensor"), "400": _ERROR},
                }
            },
            "/api/plugins": {
                "get": {
                    "summary": "Loaded plugins and the state of each configured plugin instance",
                    "responses": {"200": _json({"type": "object", "required": ["plugins", "instances"], "properties": {"plugins": {"type": "array"}, "instances": {"type": "array"}, "hub_view": {"type": "object", "description": "readings published through the hub view: refused per sensor, deferred, dropped per plugin"}}}, "plugins and instances")},
                }
            },
            "/api/health": {
                "get": {
                    "summary": "For monitoring probes: uptime, plugin instances, clients, reading counters, storage state",
                    "responses": {
                        "200": _json(_ref("Health"), "all is well"),
                        "503": _json(_ref("Health"), "degraded: storage failing, readings dropped, or a plugin instance crash-looping (see problems)"),
                    },
                }
            },
            "/api/openapi.json": {
                "get": {"summary": "This description", "responses": {"200": _json({"type": "object"}, "OpenAPI 3.1")}}
            },
            **alerts_openapi.PATHS,
            **OUTPUT_PATHS,
            **calibration_api.openapi_paths(),
        },
        "components": {
            "schemas": {**SCHEMAS, **alerts_openapi.SCHEMAS},
            "responses": {"Error": _json(_ref("Error"), "an error the client can act on")},
        },
    }


class OpenAPIHandler(api.JSONHandler):
    def get(self) -> None:
        self.send_json(spec())
