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

import asyncio
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
from smartanom.events import DeviceStatusChanged, SensorReading
from smartanom.frames import Outbox, accepts_prebuilt, text_frame
from smartanom.protocol import ProtocolError
from smartanom.sendbuffer import SendBuffer
from smartanom.throttle import LogThrottle
from smartanom.ws_commands import Commands, Session

if TYPE_CHECKING:
    from smartanom.auth import Authenticator
    from smartanom.config import ServerConfig
    from smartanom.registry import Registry

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

    def broadcast(self, text: str, *, device_id: int | None = None, sensor_id: int | None = None) -> None:
        """Send an already encoded message to /ws/sensor-data/ and to one device's and one sensor's
        streams (an extension message, such as the alert engine's)."""
        self._broadcast(text, (self.all, self.by_device.get(device_id), self.by_sensor.get(sensor_id)))

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


# Refused browser origins, logged at most once a minute each (a page retrying in a
# loop must not flood the log); module-wide, since each attempt is a new handler.
_REFUSED_ORIGINS = LogThrottle()
# Connections refused for a missing or wrong token: a client retrying in a loop
# gets one line, then one a minute with the count (not one per attempt).
_UNAUTHORIZED_LOG = LogThrottle()
# Messages one connection may have handled before it lets the loop serve others:
# a flooding client's buffered frames are otherwise all handled in one go.
FAIR_SHARE = 16


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
    subscribe but not publish. What a client may send is decided by
    core/ws_commands.py; this class owns the connection.
    """

    def initialize(
        self, scope: str, fanout: FanOut, registry: "Registry", commands: Commands, auth: "Authenticator",
        server: "ServerConfig", auth_timeout: float,
    ) -> None:
        self.fanout = fanout
        self.registry = registry
        self.commands = commands
        self.auth = auth
        self.server = server
        self.auth_timeout = auth_timeout
        self.session = Session(scope)
        self._resource_id: str | None = None
        self._group: set | None = None
        self.prebuilt = False  # may the fan-out write pre-built frames? (set in open)
        self._closed = False
        self.send_buffer: SendBuffer | None = None  # set in open, once there is a stream
        self._auth_timer = None
        self._max_size = server.max_message_size
        limit = server.rate_limit
        self._rate = _RateLimit(limit.per_second, limit.burst) if limit is not None else None
        self._refused = 0
        self._refusal_log = LogThrottle()  # this connection's refusals
        self._handled = 0  # messages since this connection last let the loop serve others

    def check_origin(self, origin: str) -> bool:
        # Same-origin always (the hub's own pages); other browser origins only when listed.
        allowed = self.server.allowed_origins
        if "*" in allowed or origin in allowed or urlparse(origin).netloc.lower() == self.request.host.lower():
            return True
        if _REFUSED_ORIGINS.allow(origin):
            log.warning("Refused a WebSocket from origin %s (add it to server.allowed_origins to allow it)", origin[:200])
        return False

    def open(self, resource_id: str | None = None) -> None:
        self._resource_id = resource_id
        # Unsent bytes are how `send` notices a client that does not read (core/sendbuffer.py).
        limits = self.server.send_buffer
        self.send_buffer = SendBuffer(self.ws_connection.stream, limits.max_bytes, limits.max_seconds)
        self.prebuilt = accepts_prebuilt(self)
        self.set_nodelay(True)  # small frames: don't let Nagle hold them back
        self.fanout.connections.add(self)
        if not self.auth.enabled:
            self.session.role = Role.WRITE
            self._subscribe()
            return
        presented = token_from_request(self.request)
        if presented is not None:
            self._login(presented, reply=False)
        else:
            self._auth_timer = IOLoop.current().call_later(self.auth_timeout, self._auth_timed_out)

    def _subscribe(self) -> None:
        fanout, resource_id, session = self.fanout, self._resource_id, self.session
        if session.scope == "all":
            group = fanout.all
        elif session.scope == "device":
            session.device = self.registry.device(_int_or_none(resource_id))
            if session.device is None:
                return self._reject("UNKNOWN_DEVICE", f"no device with id {resource_id!r}; known: {_ids(self.registry.devices)}")
            group = fanout.by_device.setdefault(session.device.id, set())
        else:
            session.sensor = self.registry.sensor(_int_or_none(resource_id))
            if session.sensor is None:
                return self._reject("UNKNOWN_SENSOR", f"no sensor with id {resource_id!r}; known: {_ids(self.registry.sensors)}")
            group = fanout.by_sensor.setdefault(session.sensor.id, set())
        self._group = group
        group.add(self)

    def _login(self, presented: str, reply: bool) -> None:
        session = self.session
        if not self.auth.enabled:
            self.send(protocol.encode_authenticated(session.role.value))
            return
        token = self.auth.identify(presented)
        if token is None:
            return self._unauthorized("wrong token")
        if self._auth_timer is not None:
            IOLoop.current().remove_timeout(self._auth_timer)
            self._auth_timer = None
        first = session.role is None
        session.role, session.client_name = token.role, token.name
        if reply:
            self.send(protocol.encode_authenticated(token.role.value))
        if first:
            log.info("WebSocket %s from %s: authenticated as %s (%s)", self.request.path, self.request.remote_ip, token.name, token.role)
            self._subscribe()

    def _auth_timed_out(self) -> None:
        self._auth_timer = None
        if self.session.role is None and not self._closed:
            self._unauthorized(f"no token within {self.auth_timeout:g} s")

    def _unauthorized(self, why: str) -> None:
        self.fanout.stats.unauthorized += 1
        if _UNAUTHORIZED_LOG.allow():
            more = f" ({_UNAUTHORIZED_LOG.skipped} more refused since the last line; logged at most once a minute)" if _UNAUTHORIZED_LOG.skipped else ""
            log.warning("WebSocket %s from %s refused: %s%s", self.request.path, self.request.remote_ip, why, more)
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
        if self in self.fanout.connections and self.send_buffer is not None:
            self.fanout.stats.bytes_sent += self.send_buffer.sent
        self.fanout.connections.discard(self)
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
        queued = self.fanout.outbox.take(self) if self.prebuilt else None
        if queued is not None:
            self.send_frames(queued)  # broadcasts queued earlier go first
        try:
            self.write_message(text)
        except WebSocketClosedError:
            self._leave()
            return
        except StreamBufferFullError:
            self._check_backlog(full=True)
            return
        self._check_backlog()

    def send_frames(self, data: bytes) -> None:
        """Write frames built by core.frames straight to the stream (the fan-out's path).

        The same limits as `send`: a client that has stopped reading is closed.
        """
        ws = self.ws_connection
        if ws is None or ws.is_closing():
            return self._leave()
        try:
            self.send_buffer.stream.write(data)
        except StreamClosedError:
            return self._leave()
        except StreamBufferFullError:
            return self._check_backlog(full=True)
        self._check_backlog()

    def _check_backlog(self, full: bool = False) -> None:
        held = self.send_buffer.overdue(full)
        if held is None:
            return
        limits = self.server.send_buffer
        self.fanout.stats.too_slow += 1
        log.warning(
            "Closing WebSocket %s from %s (%s): %d bytes unsent for %.1f s (limit %d bytes for %g s, or %d at once); "
            "the client does not read fast enough",
            self.request.path, self.request.remote_ip, self.session.client_name, self.send_buffer.unsent, held,
            limits.max_bytes, limits.max_seconds, 4 * limits.max_bytes,
        )
        self.send_buffer.lift_cap()
        self.close(protocol.CLOSE_TOO_SLOW, "too slow: unread messages piled up")

    def on_message(self, message: str | bytes):
        self._handle(message)
        self._handled += 1
        if self._handled >= FAIR_SHARE:
            # Tornado waits for a returned awaitable before reading the next frame.
            self._handled = 0
            return asyncio.sleep(0)
        return None

    def _handle(self, message: str | bytes) -> None:
        if self._closed:
            return  # arrived after we closed: not accepted, so not acknowledged either
        if self._rate is not None and not self._rate.allow():
            self.fanout.stats.rate_limited += 1
            self.fanout.stats.errors += 1
            self.fanout.stats.refused["RATE_LIMITED"] += 1
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
            if self.session.role is None:
                return self._unauthorized("the first message must be {\"type\": \"auth\", \"token\": ...}")
            self._error(exc.code, exc.message)
            return
        if isinstance(request, protocol.AuthRequest):
            return self._login(request.token, reply=True)
        if self.session.role is None:
            return self._unauthorized("the first message must be {\"type\": \"auth\", \"token\": ...}")
        try:
            reply = self.commands.run(self.session, request)
        except ProtocolError as exc:
            self._error(exc.code, exc.message)
            return
        if reply is not None:
            self.send(reply)

    def _error(self, code: str, message: str) -> None:
        self.fanout.stats.errors += 1
        self.fanout.stats.refused[code] += 1
        self._log_refusal(code, message)
        self.send(protocol.encode_error(code, message))

    def _log_refusal(self, code: str, message: str = "") -> None:
        # Enough for an operator to find a misbehaving client, never a flood:
        # the first refusal of a connection, then at most one line a minute.
        self._refused += 1
        if self._refusal_log.allow():
            log.warning(
                "Client %s (%s) on %s: %s%s; %d message(s) refused on this connection so far",
                self.request.remote_ip, self.session.client_name, self.request.path, code,
                f" ({message[:120]})" if message else "", self._refused,
            )

    def _reject(self, code: str, message: str) -> None:
        self._error(code, message)
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
