"""The three WebSocket streams and the fan-out that feeds them.

`/ws/sensor-data/` gets every reading and status change, `/ws/device/{id}/`
those of one device, `/ws/sensor/{id}/` the readings of one sensor. A
connection sits in exactly one subscriber set, so it gets each event once. The
fan-out encodes and frames each event once and queues the same bytes for every
subscriber; each connection's queued frames go out in one write per loop turn
(core/frames.py). Tornado buffers each write, so a slow client never holds up
the bus.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING
from urllib.parse import urlparse

from tornado.iostream import StreamClosedError
from tornado.websocket import WebSocketClosedError, WebSocketHandler

from core import protocol
from core.frames import Outbox, accepts_prebuilt, text_frame
from core.events import DeviceStatusChanged, SensorReading
from core.protocol import ProtocolError

if TYPE_CHECKING:
    from core.hub import Hub

log = logging.getLogger("smartanom.websocket")


class FanOut:
    """Subscriber sets per stream; a bus listener for readings and statuses."""

    def __init__(self) -> None:
        self.all: set[StreamHandler] = set()
        self.by_device: dict[int, set[StreamHandler]] = {}
        self.by_sensor: dict[int, set[StreamHandler]] = {}
        self.outbox = Outbox()

    def attach(self, bus) -> list:
        return [bus.subscribe(SensorReading, self.on_reading), bus.subscribe(DeviceStatusChanged, self.on_status)]

    @property
    def count(self) -> int:
        return len(self.all) + sum(map(len, self.by_device.values())) + sum(map(len, self.by_sensor.values()))

    def on_reading(self, reading: SensorReading) -> None:
        sensor = reading.sensor
        device_subs = self.by_device.get(sensor.device.id)
        sensor_subs = self.by_sensor.get(sensor.id)
        if not (self.all or device_subs or sensor_subs):
            return
        self._broadcast(protocol.encode_reading(reading), (self.all, device_subs, sensor_subs))

    def on_status(self, event: DeviceStatusChanged) -> None:
        device_subs = self.by_device.get(event.device.id)
        if not (self.all or device_subs):
            return
        self._broadcast(protocol.encode_status(event.device, event.status, event.timestamp), (self.all, device_subs))

    def _broadcast(self, text: str, groups: tuple) -> None:
        frame = text_frame(text)
        add = self.outbox.add
        for group in groups:
            if group:
                for conn in tuple(group):  # a failed fallback send leaves its set
                    if conn.prebuilt:
                        add(conn, frame)
                    else:
                        conn.send(text)


class StreamHandler(WebSocketHandler):
    """One dashboard connection. The URL decides which stream it gets."""

    def initialize(self, hub: "Hub", scope: str) -> None:
        self.hub = hub
        self.scope = scope  # "all" | "device" | "sensor"
        self.device = None
        self.sensor = None
        self._group: set | None = None
        self.prebuilt = False  # may the fan-out write pre-built frames? (set in open)

    def check_origin(self, origin: str) -> bool:
        # Same-origin always (the hub's own pages); other browser origins only when listed.
        allowed = self.hub.config.server.allowed_origins
        if "*" in allowed or origin in allowed:
            return True
        return urlparse(origin).netloc.lower() == self.request.host.lower()

    def open(self, resource_id: str | None = None) -> None:
        fanout = self.hub.fanout
        if self.scope == "all":
            self._group = fanout.all
        elif self.scope == "device":
            self.device = self.hub.registry.device(_int_or_none(resource_id))
            if self.device is None:
                return self._reject("UNKNOWN_DEVICE", f"no device with id {resource_id!r}; known: {_ids(self.hub.registry.devices)}")
            self._group = fanout.by_device.setdefault(self.device.id, set())
        else:
            self.sensor = self.hub.registry.sensor(_int_or_none(resource_id))
            if self.sensor is None:
                return self._reject("UNKNOWN_SENSOR", f"no sensor with id {resource_id!r}; known: {_ids(self.hub.registry.sensors)}")
            self._group = fanout.by_sensor.setdefault(self.sensor.id, set())
        self.prebuilt = accepts_prebuilt(self)
        self._group.add(self)
        self.set_nodelay(True)  # small frames: don't let Nagle hold them back

    def on_close(self) -> None:
        if self._group is not None:
            self._group.discard(self)
            self._group = None

    def send(self, text: str) -> None:
        queued = self.hub.fanout.outbox.take(self) if self.prebuilt else None
        if queued is not None:
            self.send_frames(queued)  # broadcasts queued earlier go first
        try:
            self.write_message(text)
        except WebSocketClosedError:
            self.on_close()

    def send_frames(self, data: bytes) -> None:
        """Write frames built by core.frames straight to the stream (the fan-out's path)."""
        ws = self.ws_connection
        if ws is None or ws.is_closing():
            return self.on_close()
        try:
            ws.stream.write(data)
        except StreamClosedError:
            self.on_close()

    def on_message(self, message: str | bytes) -> None:
        try:
            request = protocol.parse(message)
            if request is protocol.PING:
                self.send(protocol.PONG)
            elif isinstance(request, protocol.SensorDataRequest):
                self._sensor_data(request)
            else:
                self._device_status(request)
        except ProtocolError as exc:
            self.send(protocol.encode_error(exc.code, exc.message))

    def _sensor_data(self, request: protocol.SensorDataRequest) -> None:
        sensor_id = request.sensor_id
        if sensor_id is None:
            if self.sensor is None:
                raise ProtocolError("INVALID_MESSAGE", "sensor_data needs an integer field 'sensor_id'")
            sensor = self.sensor
        else:
            sensor = self.hub.registry.sensor(sensor_id)
            if sensor is None:
                raise ProtocolError("UNKNOWN_SENSOR", f"no sensor with id {sensor_id}")
        if self.device is not None and sensor.device is not self.device:
            raise ProtocolError("SENSOR_NOT_ON_DEVICE", f"sensor {sensor.id} belongs to device {sensor.device.id}, not to device {self.device.id}")
        if self.sensor is not None and sensor is not self.sensor:
            raise ProtocolError("SENSOR_NOT_ON_DEVICE", f"this stream is for sensor {self.sensor.id}; sensor_id {sensor.id} belongs elsewhere")
        self.hub.accept_reading(sensor, request.value, request.timestamp, "websocket")

    def _device_status(self, request: protocol.DeviceStatusRequest) -> None:
        if self.device is not None:
            device = self.device
            if request.device_id is not None and request.device_id != device.id:
                raise ProtocolError("INVALID_MESSAGE", f"this stream is for device {device.id}; device_id {request.device_id} does not match")
        elif self.scope == "all" and request.device_id is not None:
            device = self.hub.registry.device(request.device_id)
            if device is None:
                raise ProtocolError("UNKNOWN_DEVICE", f"no device with id {request.device_id}")
        else:
            raise ProtocolError("INVALID_MESSAGE", "device_status is accepted on /ws/device/{id}/, or on /ws/sensor-data/ with a 'device_id'")
        changed = self.hub.status.set_status(device, request.status, "set by a WebSocket client")
        if not changed or self.scope == "sensor":
            # No change means no broadcast; still confirm to the sender.
            self.send(protocol.encode_status(device, self.hub.status.status[device.id], time.time()))

    def _reject(self, code: str, message: str) -> None:
        self.send(protocol.encode_error(code, message))
        self.close(protocol.CLOSE_UNKNOWN_RESOURCE, message[:120])


def _int_or_none(text: str | None) -> int | None:
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


def _ids(mapping: dict) -> str:
    ids = sorted(mapping)
    shown = ", ".join(map(str, ids[:20]))
    return shown + (", ..." if len(ids) > 20 else "") if ids else "none"
