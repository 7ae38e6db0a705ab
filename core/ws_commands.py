"""What a WebSocket client may send, and what it gets back: the command rules.

No Tornado here: `core/websocket.py` owns the connection (origin, auth
handshake, rate limit, frames, buffers) and hands each parsed request to
`Commands.run` with the connection's `Session`. A refusal is a ProtocolError
with the stable code of docs/websocket.md; the connection stays open.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from smartanom import protocol
from smartanom.auth import Role
from smartanom.protocol import ProtocolError
from smartanom.validity import implausible

if TYPE_CHECKING:
    from smartanom.registry import Device, Registry, Sensor
    from smartanom.status import StatusTracker


@dataclass
class Session:
    """One connection as the rules see it: its stream, and who is on it."""

    scope: str  # "all" | "device" | "sensor": which URL the client opened
    device: "Device | None" = None  # set on /ws/device/{id}/
    sensor: "Sensor | None" = None  # set on /ws/sensor/{id}/
    role: Role | None = None  # None until authenticated
    client_name: str = "anonymous"


class Commands:
    """Carries out `sensor_data`, `device_status` and `ping` for one hub."""

    def __init__(
        self,
        registry: "Registry",
        status: "StatusTracker",
        accept_reading: Callable[["Sensor", float, float | None, str], None],
        overloaded: Callable[[], bool],
    ):
        self.registry = registry
        self.status = status
        self.accept_reading = accept_reading
        self.overloaded = overloaded  # storage's backpressure: refuse rather than drop

    def run(self, session: Session, request) -> str | None:
        """Carry out one parsed request (not `auth`: the connection handles that).

        Returns the reply to send, or None when the broadcast is the answer.
        Raises ProtocolError for a request the rules refuse.
        """
        if request is protocol.PING:
            return protocol.PONG
        if session.role is not Role.WRITE:
            kind = "sensor_data" if isinstance(request, protocol.SensorDataRequest) else "device_status"
            raise ProtocolError("FORBIDDEN", f"the token {session.client_name!r} has the read role: it may subscribe but not send {kind}")
        if isinstance(request, protocol.SensorDataRequest):
            self._sensor_data(session, request)
            return None
        return self._device_status(session, request)

    def _sensor_data(self, session: Session, request: protocol.SensorDataRequest) -> None:
        if request.sensor_id is None:
            if session.sensor is None:
                raise ProtocolError("INVALID_MESSAGE", "sensor_data needs an integer field 'sensor_id'")
            sensor = session.sensor
        else:
            sensor = self.registry.sensor(request.sensor_id)
            if sensor is None:
                raise ProtocolError("UNKNOWN_SENSOR", f"no sensor with id {request.sensor_id}")
        if session.device is not None and sensor.device is not session.device:
            raise ProtocolError("SENSOR_NOT_ON_DEVICE", f"sensor {sensor.id} belongs to device {sensor.device.id}, not to device {session.device.id}")
        if session.sensor is not None and sensor is not session.sensor:
            raise ProtocolError("SENSOR_NOT_ON_DEVICE", f"this stream is for sensor {session.sensor.id}; sensor_id {sensor.id} belongs elsewhere")
        problem = implausible(sensor, request.value)
        if problem:
            raise ProtocolError("INVALID_VALUE", problem)
        if self.overloaded():
            raise ProtocolError("OVERLOADED", "the hub holds as many unwritten readings as it may (storage is behind or failing); this one was not accepted, send it again shortly")
        self.accept_reading(sensor, request.value, request.timestamp, "websocket")

    def _device_status(self, session: Session, request: protocol.DeviceStatusRequest) -> str | None:
        if session.device is not None:
            device = session.device
            if request.device_id is not None and request.device_id != device.id:
                raise ProtocolError("INVALID_MESSAGE", f"this stream is for device {device.id}; device_id {request.device_id} does not match")
        elif session.scope == "all" and request.device_id is not None:
            device = self.registry.device(request.device_id)
            if device is None:
                raise ProtocolError("UNKNOWN_DEVICE", f"no device with id {request.device_id}")
        else:
            raise ProtocolError("INVALID_MESSAGE", "device_status is accepted on /ws/device/{id}/, or on /ws/sensor-data/ with a 'device_id'")
        if self.status.set_status(device, request.status, "set by a WebSocket client"):
            return None  # the broadcast of the change reaches the sender too
        # No change means no broadcast; still confirm to the sender.
        return protocol.encode_status(device, self.status.of(device.id), time.time())
