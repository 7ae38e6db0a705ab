"""The WebSocket message contract (../shared/spec/websocket-api.md), in code.

Parsing turns one client frame into a typed request or a `ProtocolError` with a
stable code; encoding turns bus events into the spec's exact JSON shapes. Each
event is encoded once, whatever the number of subscribers.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import datetime, timezone

from smartanom import validity
from smartanom.events import DeviceStatus, SensorReading
from smartanom.registry import Sensor

# The stable error codes of {"type": "error", "code": ...}; docs/websocket.md lists them.
ERROR_CODES = {
    "INVALID_JSON": "the frame is not valid JSON text (binary frames are not accepted)",
    "INVALID_MESSAGE": "valid JSON, but not an object of the expected shape (missing, unknown or mistyped fields)",
    "UNKNOWN_TYPE": "the `type` field names no message the hub accepts",
    "UNKNOWN_SENSOR": "no sensor with that id (in the message or in the URL)",
    "UNKNOWN_DEVICE": "no device with that id (in the message or in the URL)",
    "SENSOR_NOT_ON_DEVICE": "on /ws/device/{id}/ (or /ws/sensor/{id}/), the sensor belongs to another device (or is another sensor)",
    "INVALID_VALUE": "`value` is not a finite number (strings, booleans, NaN, Infinity and out-of-range numbers are refused), or lies outside the sensor's plausible range (min/max in the config)",
    "INVALID_TIMESTAMP": "`timestamp` is not an ISO 8601 string, lies more than 5 minutes in the future, or before 2000 (a sensor whose clock was never set)",
    "INVALID_STATUS": "`status` is not one of active, inactive, maintenance",
    "MESSAGE_TOO_BIG": "the frame is larger than `server.max_message_size`; the connection stays open (frames over 4 times that size are refused by closing with 1009)",
    "RATE_LIMITED": "the client sent more messages than `server.rate_limit` allows; the message was ignored, the connection stays open",
    "UNAUTHORIZED": "authentication is on and the token is missing or wrong; the hub closes the connection with 4001",
    "OVERLOADED": "the hub holds as many unwritten readings as it may (its database is behind or failing) and did not accept this one; send it again shortly (nothing accepted is ever dropped)",
    "FORBIDDEN": "the token's role is `read`: it may subscribe but not send sensor_data or device_status; the connection stays open",
}

# WebSocket close codes the hub sends (docs/websocket.md lists them).
CLOSE_GOING_AWAY = 1001  # the hub is shutting down
CLOSE_UNAUTHORIZED = 4001  # after an UNAUTHORIZED error
CLOSE_UNKNOWN_RESOURCE = 4004  # the URL names an unknown device or sensor
CLOSE_TOO_SLOW = 4008  # the client did not read its messages fast enough

# Python refuses to convert integers with more than 4300 digits (a CPU guard);
# nothing the hub accepts needs more than a few, so refuse long ones early.
MAX_INT_DIGITS = 40


class ProtocolError(Exception):
    def __init__(self, code: str, message: str):
        assert code in ERROR_CODES, code
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class SensorDataRequest:
    sensor_id: int | None
    value: float
    timestamp: float | None


@dataclass(frozen=True, slots=True)
class DeviceStatusRequest:
    status: DeviceStatus
    device_id: int | None


@dataclass(frozen=True, slots=True)
class AuthRequest:
    token: str


@dataclass(frozen=True, slots=True)
class PingRequest:
    pass


PING = PingRequest()

_FIELDS = {
    "sensor_data": {"type", "sensor_id", "value", "timestamp"},
    "device_status": {"type", "status", "device_id"},
    "ping": {"type"},
    "auth": {"type", "token"},
}


def _reject_constant(name: str):
    raise ProtocolError("INVALID_VALUE", f"{name} is not a number the hub accepts; send a finite number")


def _parse_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise ProtocolError("INVALID_VALUE", f"number with {len(text)} digits is out of range")
    return int(text)


# json.loads(frame, parse_constant=...) would build a new decoder for every message.
_DECODER = json.JSONDecoder(parse_constant=_reject_constant, parse_int=_parse_int)


def parse(frame: str | bytes):
    """One client frame -> SensorDataRequest | DeviceStatusRequest | PingRequest | AuthRequest."""
    if isinstance(frame, bytes):
        raise ProtocolError("INVALID_JSON", "binary frames are not accepted; send JSON as a text frame")
    try:
        # Deep nesting ends in RecursionError inside the C decoder: caught below.
        data = _DECODER.decode(frame)
    except ProtocolError:
        raise
    except (ValueError, RecursionError) as exc:
        raise ProtocolError("INVALID_JSON", f"message is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ProtocolError("INVALID_MESSAGE", f"message must be a JSON object, got {_json_type(data)}")
    kind = data.get("type")
    if not isinstance(kind, str):
        raise ProtocolError("INVALID_MESSAGE", "message needs a string field 'type' (sensor_data, device_status or ping)")
    allowed = _FIELDS.get(kind)
    if allowed is None:
        raise ProtocolError("UNKNOWN_TYPE", f"unknown message type {kind!r}; accepted: {', '.join(_FIELDS)}")
    extra = data.keys() - allowed
    if extra:
        raise ProtocolError("INVALID_MESSAGE", f"unknown field(s) {', '.join(sorted(map(repr, extra)))} in {kind}; allowed: {', '.join(sorted(allowed))}")
    if kind == "sensor_data":
        return SensorDataRequest(
            _optional_id(data, "sensor_id"), parse_value(data.get("value", _MISSING)), parse_timestamp(data.get("timestamp"))
        )
    if kind == "device_status":
        status = data.get("status")
        try:
            status = DeviceStatus(status)
        except ValueError:
            raise ProtocolError("INVALID_STATUS", f"status must be one of active, inactive, maintenance; got {status!r}") from None
        return DeviceStatusRequest(status, _optional_id(data, "device_id"))
    if kind == "auth":
        token = data.get("token")
        if not isinstance(token, str):
            raise ProtocolError("INVALID_MESSAGE", "auth needs a string field 'token'")
        return AuthRequest(token)
    return PING


_MISSING = object()


def _optional_id(data: dict, key: str) -> int | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ProtocolError("INVALID_MESSAGE", f"{key} must be an integer, got {_json_type(value)} {value!r}"[:200])
    return value


def parse_value(value) -> float:
    if value is _MISSING:
        raise ProtocolError("INVALID_MESSAGE", "sensor_data needs a numeric field 'value'")
    try:
        return validity.check_value(value, describe=_json_type)
    except validity.InvalidReading as exc:
        raise ProtocolError(exc.code, exc.message) from None


def parse_timestamp(value) -> float | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ProtocolError("INVALID_TIMESTAMP", f"timestamp must be an ISO 8601 string such as 2025-09-11T15:30:00Z, got {_json_type(value)}")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ProtocolError("INVALID_TIMESTAMP", f"timestamp {value[:64]!r} is not ISO 8601 (e.g. 2025-09-11T15:30:00Z)") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)  # documented: no offset means UTC
    try:
        epoch = moment.timestamp()
    except (OverflowError, OSError, ValueError):
        raise ProtocolError("INVALID_TIMESTAMP", f"timestamp {value[:64]!r} is out of range") from None
    try:
        return validity.check_epoch(epoch, repr(value[:64]))
    except validity.InvalidReading as exc:
        raise ProtocolError(exc.code, exc.message) from None


def _json_type(value) -> str:
    if value is None:
        return "null"
    return {bool: "boolean", int: "number", float: "number", str: "string", list: "array", dict: "object"}.get(type(value), type(value).__name__)


# --- outgoing -------------------------------------------------------------------

# (second, its text): readings come in bursts within one second. One tuple,
# swapped whole, so another thread never sees a second with the wrong text.
_last_second: tuple[int, str] = (0, "1970-01-01T00:00:00")


def to_millis(epoch: float) -> int:
    """Epoch seconds -> whole milliseconds, rounded to the nearest.

    The one rounding rule for every timestamp the hub writes as text (WebSocket,
    HTTP API, MQTT): the same reading shows the same millisecond everywhere,
    and a reading bridged hub to hub keeps it.
    """
    seconds = int(epoch // 1)
    return seconds * 1000 + int(round((epoch - seconds) * 1000))


def format_timestamp(epoch: float) -> str:
    """ISO 8601 UTC with 'Z'; milliseconds only when the time has a fraction."""
    global _last_second
    seconds, millis = divmod(to_millis(epoch), 1000)
    last = _last_second
    if last[0] == seconds:
        base = last[1]
    else:
        base = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
        _last_second = (seconds, base)
    return f"{base}.{millis:03d}Z" if millis else f"{base}Z"


_COMPACT = (",", ":")
_prefix_cache: dict[Sensor, str] = {}


def _sensor_prefix(sensor: Sensor) -> str:
    # Everything but value and timestamp is fixed per sensor: encode it once.
    prefix = _prefix_cache.get(sensor)
    if prefix is None:
        head = json.dumps(
            {
                "type": "sensor_data_update",
                "sensor_id": sensor.id,
                "sensor_type": sensor.type,
                "device_id": sensor.device.id,
                "device_name": sensor.device.name,
                "value": 0,
            },
            separators=_COMPACT,
        )
        prefix = _prefix_cache[sensor] = head[: -len("0}")]
    return prefix


def encode_reading(reading: SensorReading) -> str:
    """The spec's sensor_data_update, built from a per-sensor prefix encoded once
    (tests/test_protocol.py checks it against json.dumps of the spec's dict)."""
    sensor = reading.sensor
    return (
        f'{_sensor_prefix(sensor)}{float.__repr__(reading.value)},"unit":{json.dumps(sensor.unit)},'
        f'"timestamp":"{format_timestamp(reading.timestamp)}"}}'
    )


def status_dict(device, status: DeviceStatus, timestamp: float) -> dict:
    return {
        "type": "device_status",
        "device_id": device.id,
        "device_name": device.name,
        "status": status.value,
        "timestamp": format_timestamp(timestamp),
    }


def encode_status(device, status: DeviceStatus, timestamp: float) -> str:
    return json.dumps(status_dict(device, status, timestamp), separators=_COMPACT)


def encode_error(code: str, message: str) -> str:
    return json.dumps({"type": "error", "message": message, "code": code}, separators=_COMPACT)


PONG = json.dumps({"type": "pong"}, separators=_COMPACT)


def encode_authenticated(role: str) -> str:
    return json.dumps({"type": "authenticated", "role": role}, separators=_COMPACT)

