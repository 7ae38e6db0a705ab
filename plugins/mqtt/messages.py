"""What the hub says on the broker: topics and JSON payloads (docs/mqtt.md, "Topics").

Pure functions, no I/O: a bus event in, `Message`s out. The reading payload
is the WebSocket API's sensor_data_update without its `type`, so a client of
either speaks the same language, and a central hub can read an edge hub's
state topics back into readings (`parse_timestamp`).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

from smartanom import DeviceStatus, DeviceStatusChanged, SensorReading, to_millis

ONLINE = "online"
OFFLINE = "offline"
_COMPACT = (",", ":")


@dataclass(frozen=True, slots=True)
class Message:
    topic: str
    payload: str
    qos: int
    retain: bool


class Topics:
    """The topic tree of one hub: <prefix>/<hub_id>/..."""

    def __init__(self, prefix: str, hub_id: str):
        self.base = f"{prefix}/{hub_id}"
        self.availability = f"{self.base}/availability"

    def sensor_state(self, sensor_id: int) -> str:
        return f"{self.base}/sensor/{sensor_id}/state"

    def device_status(self, device_id: int) -> str:
        return f"{self.base}/device/{device_id}/status"


def format_timestamp(epoch: float) -> str:
    """ISO 8601 UTC with milliseconds and a Z, which the WebSocket API also accepts.

    Rounded to the millisecond by the hub's one rule (`to_millis`), as the
    WebSocket API and the HTTP API write it: truncating here made about half
    of the bridged readings 1 ms earlier at the central hub.
    """
    seconds, millis = divmod(to_millis(epoch), 1000)
    return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S") + f".{millis:03d}Z"


def parse_timestamp(text: str, timezone_name: str | None = None, now: float | None = None) -> float:
    """ISO 8601 -> epoch seconds; no offset means `timezone_name` (an IANA zone), else UTC. Raises ValueError.

    A local time that the zone shows twice (02:30 when the clocks go back) is
    read as whichever of the two moments is nearer to `now` (the arrival time):
    a device publishing as it measures means the recent one, not always the first.
    """
    if not isinstance(text, str):
        raise ValueError(f"timestamp must be an ISO 8601 string, got {type(text).__name__}")
    # Python 3.10's fromisoformat does not read the 'Z' suffix.
    moment = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith("Z") else text)
    if moment.tzinfo is not None:
        return moment.timestamp()
    if not timezone_name:
        return moment.replace(tzinfo=timezone.utc).timestamp()
    zone = ZoneInfo(timezone_name)
    first, second = (moment.replace(tzinfo=zone, fold=fold).timestamp() for fold in (0, 1))
    if first == second:
        return first
    now = time.time() if now is None else now
    return min((first, second), key=lambda epoch: abs(epoch - now))


def reading_payload(reading: SensorReading) -> dict:
    sensor = reading.sensor
    return {
        "sensor_id": sensor.id,
        "sensor_type": sensor.type,
        "device_id": sensor.device.id,
        "device_name": sensor.device.name,
        "value": reading.value,
        "unit": sensor.unit,
        "timestamp": format_timestamp(reading.timestamp),
    }


def status_payload(device, status: DeviceStatus, timestamp: float, previous: DeviceStatus | None = None, reason: str = "") -> dict:
    return {
        "device_id": device.id,
        "device_name": device.name,
        "status": status.value,
        "previous": previous.value if previous is not None else None,
        "reason": reason,
        "timestamp": format_timestamp(timestamp),
    }


def reading_message(topics: Topics, reading: SensorReading, qos: int, retain: bool) -> Message:
    payload = json.dumps(reading_payload(reading), separators=_COMPACT)
    return Message(topics.sensor_state(reading.sensor.id), payload, qos, retain)


def status_message(topics: Topics, event: DeviceStatusChanged, qos: int, retain: bool) -> Message:
    payload = status_payload(event.device, event.status, event.timestamp, event.previous, event.reason)
    return Message(topics.device_status(event.device.id), json.dumps(payload, separators=_COMPACT), qos, retain)
