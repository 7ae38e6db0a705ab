"""The three WebSocket streams and the fan-out that feeds them.

`/ws/sensor-data/` gets every reading and status change, `/ws/device/{id}/`
those of one device, `/ws/sensor/{id}/` the readings of one sensor. A
connection sits in exactly one subscriber set, so it gets each event once. The
fan-out encodes and frames each event once and queues the same bytes for every
subscriber; each connection's queued frames go out in one write per loop turn
(core/frames.py). Tornado buffers each write, so a slow client never holds up
the bus, and a client whose buffer keeps growing is closed (server.send_buffer)
so that it cannot hold the hub's memory either.
"""

from __future__ import annotations

import collections
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import urlparse

from tornado.ioloop import IOLoop
from tornado.iostream import StreamBufferFullError, StreamClosedError
from tornado.websocket import WebSocketClosedError, WebSocketHandler

from smartanom import protocol
from smartanom.auth import Role, token_from_request
from smartanom.frames import Outbox, accepts_prebuilt, text_frame
from smartanom.events import DeviceStatusChanged, SensorReading
from smartanom.protocol import ProtocolError

if TYPE_CHECKING:
    from smartanom.hub import Hub

log = logging.getLogger("smartanom.websocket")


class FanOut:
    """Subscriber sets per stream; a bus listener for readings and statuses."""

    def __init__(self) -> None:
        self.connections: set[StreamHandler] = set()  # every open connection, subscribed or not
        self.stats = WebSocketStats()
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


# At most one log line per connection per this many seconds about refused messages.
REFUSAL_LOG_EVERY = 60.0
_REFUSED_ORIGINS: dict[str, float] = {}  # origin -> when it may be logged again


@dataclass
class WebSocketStats:
    """Counters for /api/health: what the hub refused, and whom it let go."""

    errors: int = 0  # error replies of every kind, including the three below
    rate_limited: int = 0
    unauthorized: int = 0
    too_slow: int = 0  # closed with CLOSE_TOO_SLOW
    # For GET /metrics (core/metrics.py), which adds the open connections' bytes at scrape time.
    refused: collections.Counter = field(default_factory=collections.Counter)  # error replies per code
    bytes_sent: int = 0  # by connections already closed


class _RateLimit:
    """A token bucket: `per_second` messages on average, `burst` at once."""

    __slots__ = ("per_second", "burst", "tokens", "last")

    def __init__(self, per_second: float, burst: int):
        self.per_second, self.burst = per_second, burst
        self.tokens, self.last = float(burst), time.monotonic()

    def allow(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.last) * self.per_second)
        self.last = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


_RATE_LIMITED = protocol.encode_error("RATE_LIMITED", "too many messages; this one was ignored (see server.rate_limit)")


class StreamHandler(WebSocketHandler):
    """One dashboard connection. The URL decides which stream it gets.

    With auth on, a connection joins its stream only once its token is known
    (from the URL, the header, or a first `auth` message); a read token may
    subscribe but not publish.
    """

    def initialize(self, hub: "Hub", scope: str) -> None:
        self.hub = hub
        self.scope = scope  # "all" | "device" | "sensor"
        self.device = None
        self.sensor = None
        self.role: Role | None = None  # None until authenticated
        self.client_name = "anonymous"
        self._resource_id: str | None = None
        self._group: set | None = None
        self.prebuilt = False  # may the fan-out write pre-built frames? (set in open)
        self._closed = False
        self._stream = None
        self._auth_timer = None
        server = hub.config.server
        self._max_size = server.max_message_size
        self._send_limit = server.send_buffer.max_bytes
        self._over_since: float | None = None
        limit = server.rate_limit
        self._rate = _RateLimit(limit.per_second, limit.burst) if limit is not None else None
        self._refused = 0
        self._next_refusal_log = 0.0

    def check_origin(self, origin: str) -> bool:
        # Same-origin always (the hub's own pages); other browser origins only when listed.
        allowed = self.hub.config.server.allowed_origins
        if "*" in allowed or origin in allowed or urlparse(origin).netloc.lower() == self.request.host.lower():
            return True
        if _REFUSED_ORIGINS.get(origin, 0.0) <= time.monotonic():
            # Once a minute per origin: a page retrying in a loop must not flood the log.
            if len(_REFUSED_ORIGINS) > 1000:  # made-up origins must not grow memory
                _REFUSED_ORIGINS.clear()
            _REFUSED_ORIGINS[origin] = time.monotonic() + REFUSAL_LOG_EVERY
            log.warning("Refused a WebSocket from origin %s (add it to server.allowed_origins to allow it)", origin[:200])
        return False

    def open(self, resource_id: str | None = None) -> None:
        self._resource_id = resource_id
        # The IOStream's unsent bytes are how `send` notices a client that does not read;
        # its public max_write_buffer_size is the hard cap that bounds memory.
        self._stream = self.ws_connection.stream
        self._stream.max_write_buffer_size = 4 * self._send_limit
        self.prebuilt = accepts_prebuilt(self)
        self.set_nodelay(True)  # small frames: don't let Nagle hold them back
        self.hub.fanout.connections.add(self)
        if not self.hub.auth.enabled:
            self.role = Role.WRITE
            self._subscribe()
            return
        presented = token_from_request(self.request)
        if presented is not None:
            self._login(presented, reply=False)
        else:
            timeout = self.hub.config.auth.timeout
            self._auth_timer = IOLoop.current().call_later(timeout, self._auth_timed_out)

    def _subscribe(self) -> None:
        fanout, resource_id = self.hub.fanout, self._resource_id
        if self.scope == "all":
            group = fanout.all
        elif self.scope == "device":
            self.device = self.hub.registry.device(_int_or_none(resource_id))
            if self.device is None:
                return self._reject("UNKNOWN_DEVICE", f"no device with id {resource_id!r}; known: {_ids(self.hub.registry.devices)}")
            group = fanout.by_device.setdefault(self.device.id, set())
        else:
            self.sensor = self.hub.registry.sensor(_int_or_none(resource_id))
            if self.sensor is None:
                return self._reject("UNKNOWN_SENSOR", f"no sensor with id {resource_id!r}; known: {_ids(self.hub.registry.sensors)}")
            group = fanout.by_sensor.setdefault(self.sensor.id, set())
        self._group = group
        group.add(self)

    def _login(self, presented: str, reply: bool) -> None:
        auth = self.hub.auth
        if not auth.enabled:
            self.send(protocol.encode_authenticated(self.role.value))
            return
        token = auth.identify(presented)
        if token is None:
            return self._unauthorized("wrong token")
        if self._auth_timer is not None:
            IOLoop.current().remove_timeout(self._auth_timer)
            self._auth_timer = None
        first = self.role is None
        self.role, self.client_name = token.role, token.name
        if reply:
            self.send(protocol.encode_authenticated(token.role.value))
        if first:
            log.info("WebSocket %s from %s: authenticated as %s (%s)", self.request.path, self.request.remote_ip, token.name, token.role)
            self._subscribe()

    def _auth_timed_out(self) -> None:
        self._auth_timer = None
        if self.role is None and not self._closed:
            self._unauthorized(f"no token within {self.hub.config.auth.timeout:g} s")

    def _unauthorized(self, why: str) -> None:
        self.hub.fanout.stats.unauthorized += 1
        log.warning("WebSocket %s from %s refused: %s", self.request.path, self.request.remote_ip, why)
        self._error(
            "UNAUTHORIZED",
            f"{why}: authentication is on; pass a token as ?token=..., in an 'Authorization: Bearer' header, "
            'or as the first message {"type": "auth", "token": "..."}',
        )
        self.close(protocol.CLOSE_UNAUTHORIZED, "unauthorized")

    def close(self, code: int | None = None, reason: str | None = None) -> None:
        # Leave the stream at once: a closing connection gets no more events.
        self._leave()
        super().close(code, reason)

    def on_close(self) -> None:
        self._leave()
        if self in self.hub.fanout.connections and self._stream is not None:
            self.hub.fanout.stats.bytes_sent += self._stream._total_write_done_index
        self.hub.fanout.connections.discard(self)
        if self._auth_timer is not None:
            IOLoop.current().remove_timeout(self._auth_timer)
            self._auth_timer = None

    def _leave(self) -> None:
        self._closed = True
        if self._group is not None:
            self._group.discard(self)
            self._group = None

    def send(self, text: str) -> None:
        """Queue `text` for this client; close the client if it has stopped reading.

        Replies, and broadcasts to connections that take no pre-built frames.
        """
        queued = self.hub.fanout.outbox.take(self) if self.prebuilt else None
        if queued is not None:
            self.send_frames(queued)  # broadcasts queued earlier go first
        try:
            self.write_message(text)
        except WebSocketClosedError:
            self._leave()
            return
        except StreamBufferFullError:
            self._backlogged(full=True)
            return
        stream = self._stream  # _unsent(), inlined: this runs once per event per subscriber
        if stream._total_write_index - stream._total_write_done_index > self._send_limit:
            self._backlogged()
        elif self._over_since is not None:
            self._over_since = None

    def _backlogged(self, full: bool = False) -> None:
        unsent = _unsent(self._stream)
        limits = self.hub.config.server.send_buffer
        now = time.monotonic()
        if self._over_since is None:
            self._over_since = now
        held = now - self._over_since
        if full or held >= limits.max_seconds:
            self.hub.fanout.stats.too_slow += 1
            log.warning(
                "Closing WebSocket %s from %s (%s): %d bytes unsent for %.1f s (limit %d bytes for %g s, or %d at once); "
                "the client does not read fast enough",
                self.request.path, self.request.remote_ip, self.client_name, unsent, held,
                limits.max_bytes, limits.max_seconds, 4 * limits.max_bytes,
            )
            self._stream.max_write_buffer_size = None  # room for the close frame itself
            self.close(protocol.CLOSE_TOO_SLOW, "too slow: unread messages piled up")

    def send_frames(self, data: bytes) -> None:
        """Write frames built by core.frames straight to the stream (the fan-out's path).

        The same limits as `send`: a client that has stopped reading is closed.
        """
        ws = self.ws_connection
        if ws is None or ws.is_closing():
            return self._leave()
        stream = self._stream
        try:
            stream.write(data)
        except StreamClosedError:
            return self._leave()
        except StreamBufferFullError:
            return self._backlogged(full=True)
        if stream._total_write_index - stream._total_write_done_index > self._send_limit:
            self._backlogged()
        elif self._over_since is not None:
            self._over_since = None

    def on_message(self, message: str | bytes) -> None:
        if self._closed:
            return  # arrived after we closed: not accepted, so not acknowledged either
        if self._rate is not None and not self._rate.allow():
            self.hub.fanout.stats.rate_limited += 1
            self.hub.fanout.stats.errors += 1
            self.hub.fanout.stats.refused["RATE_LIMITED"] += 1
            self._log_refusal("RATE_LIMITED")
            self.send(_RATE_LIMITED)
            return
        # Tornado refuses frames over 4 * max_message_size by closing (1009);
        # between the two limits the client gets an error and stays connected.
        # (A str has at most 4 UTF-8 bytes per character: encode only when it may be too big.)
        if len(message) * 4 > self._max_size and len(message if isinstance(message, bytes) else message.encode()) > self._max_size:
            self._error("MESSAGE_TOO_BIG", f"frame is larger than {self._max_size} bytes (server.max_message_size)")
            return
        try:
            request = protocol.parse(message)
        except ProtocolError as exc:
            if self.role is None:
                return self._unauthorized("the first message must be {\"type\": \"auth\", \"token\": ...}")
            self._error(exc.code, exc.message)
            return
        if self.role is None and not isinstance(request, protocol.AuthRequest):
            return self._unauthorized("the first message must be {\"type\": \"auth\", \"token\": ...}")
        try:
            if request is protocol.PING:
                self.send(protocol.PONG)
            elif isinstance(request, protocol.AuthRequest):
                self._login(request.token, reply=True)
            elif self.role is not Role.WRITE:
                raise ProtocolError("FORBIDDEN", f"the token {self.client_name!r} has the read role: it may subscribe but not send {'sensor_data' if isinstance(request, protocol.SensorDataRequest) else 'device_status'}")
            elif isinstance(request, protocol.SensorDataRequest):
                self._sensor_data(request)
            else:
                self._device_status(request)
        except ProtocolError as exc:
            self._error(exc.code, exc.message)

    def _error(self, code: str, message: str) -> None:
        self.hub.fanout.stats.errors += 1
        self.hub.fanout.stats.refused[code] += 1
        self._log_refusal(code, message)
        self.send(protocol.encode_error(code, message))

    def _log_refusal(self, code: str, message: str = "") -> None:
        # Enough for an operator to find a misbehaving client, never a flood:
        # the first refusal of a connection, then at most one line a minute.
        self._refused += 1
        now = time.monotonic()
        if now < self._next_refusal_log:
            return
        self._next_refusal_log = now + REFUSAL_LOG_EVERY
        log.warning(
            "Client %s (%s) on %s: %s%s; %d message(s) refused on this connection so far",
            self.request.remote_ip, self.client_name, self.request.path, code,
            f" ({message[:120]})" if message else "", self._refused,
        )

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
        problem = sensor.implausible(request.value)
        if problem:
            raise ProtocolError("INVALID_VALUE", problem)
        if self.hub.storage.backlogged:
            raise ProtocolError("OVERLOADED", "the hub is writing a backlog of readings; this one was not accepted, send it again shortly")
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
        if not changed:
            # No change means no broadcast; still confirm to the sender.
            self.send(protocol.encode_status(device, self.hub.status.status[device.id], time.time()))

    def _reject(self, code: str, message: str) -> None:
        self._error(code, message)
        self.close(protocol.CLOSE_UNKNOWN_RESOURCE, message[:120])


def _unsent(stream) -> int:
    # Bytes handed to the IOStream and not yet taken by the kernel. Tornado keeps
    # these counters privately (6.x); tests/test_websocket_limits.py notices a change.
    return stream._total_write_index - stream._total_write_done_index


def _int_or_none(text: str | None) -> int | None:
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


def _ids(mapping: dict) -> str:
    ids = sorted(mapping)
    shown = ", ".join(map(str, ids[:20]))
    return shown + (", ..." if len(ids) > 20 else "") if ids else "none"
