"""MQTT messages in -> readings: topic routes and payload extraction.

Each route says which hub sensor a topic feeds and where its number is: the
whole payload (ESPHome's `<node>/sensor/<name>/state`), a dotted path into a
JSON payload (Tasmota's `tele/<device>/SENSOR`), or, for an edge hub's state
topic, `value` with the edge's own `timestamp`. A payload that does not hold
a usable number raises `PayloadError` with a message fit for the log.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

from smartanom.builtin.mqtt.config import MqttOptions
from smartanom.builtin.mqtt.messages import Topics, parse_timestamp


class PayloadError(ValueError):
    pass


@dataclass(frozen=True)
class Route:
    topic: str
    sensor_id: int
    json_path: tuple[str, ...] | None = None
    timestamp_path: tuple[str, ...] | None = None
    timezone: str | None = None  # of a timestamp without an offset (None: UTC)

    def extract(self, payload: bytes) -> tuple[float, float | None]:
        """(value, timestamp or None for 'now') from one payload."""
        try:
            text = payload.decode("utf-8").strip()
        except UnicodeDecodeError:
            raise PayloadError("payload is not UTF-8 text") from None
        if self.json_path is None:
            return _number(text, "payload"), None
        try:
            document = json.loads(text)
        except ValueError:
            raise PayloadError(f"payload is not JSON: {text[:80]!r}") from None
        value = _number(_walk(document, self.json_path), ".".join(self.json_path))
        timestamp = None
        if self.timestamp_path is not None:
            raw = _walk(document, self.timestamp_path)
            try:
                timestamp = parse_timestamp(raw, self.timezone)
            except ValueError as exc:
                raise PayloadError(f"{'.'.join(self.timestamp_path)}: {exc}") from None
        return value, timestamp


def routes_from(options: MqttOptions) -> dict[str, list[Route]]:
    """Topic -> its routes (one topic may feed several sensors, e.g. Tasmota's SENSOR)."""
    routes: dict[str, list[Route]] = {}
    for sub in options.subscribe:
        route = Route(sub.topic, sub.sensor, _path(sub.json_path), _path(sub.timestamp_path), sub.timezone)
        routes.setdefault(sub.topic, []).append(route)
    for edge in options.edge_hubs:
        topics = Topics(options.topic_prefix, edge.hub_id)
        for edge_sensor, local_sensor in edge.sensors.items():
            topic = topics.sensor_state(edge_sensor)
            routes.setdefault(topic, []).append(Route(topic, local_sensor, ("value",), ("timestamp",)))
    return routes


def _path(text: str | None) -> tuple[str, ...] | None:
    return None if text is None else tuple(text.split("."))


def _walk(document, path: tuple[str, ...]):
    current = document
    for depth, key in enumerate(path):
        where = ".".join(path[: depth + 1])
        if isinstance(current, dict) and key in current:
            current = current[key]
        elif isinstance(current, list) and key.lstrip("-").isdigit() and -len(current) <= int(key) < len(current):
            current = current[int(key)]
        else:
            raise PayloadError(f"JSON payload has no {where!r}")
    return current


def _number(value, where: str) -> float:
    if isinstance(value, bool):
        raise PayloadError(f"{where} is a boolean, not a number")
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise PayloadError(f"{where} is not a number: {value[:80]!r}") from None
    if not isinstance(value, (int, float)):
        raise PayloadError(f"{where} is not a number: {json.dumps(value)[:80]}")
    try:
        number = float(value)
    except OverflowError:
        raise PayloadError(f"{where} is too large") from None
    if not math.isfinite(number):
        # ESPHome sends "nan" while a sensor has no valid state.
        raise PayloadError(f"{where} is not a finite number ({number})")
    return number
