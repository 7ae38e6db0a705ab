"""A lean RFC 6455 WebSocket client for the load generator, on asyncio.Protocol.

Why not Tornado's or websockets' client: they read each frame through several
awaits (tens of microseconds per frame), so at tens of thousands of deliveries
per second the load generator would saturate its core long before the server
under test. This client parses the frames of a whole TCP read in one loop and,
unless asked for the payload, only classifies each frame by one byte. It still
speaks real WebSocket over real TCP: handshake, masked client frames, ping,
close.
"""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import time

# Byte 9 of a compact '{"type":"...' message is the type's first letter.
_SENSOR_DATA_UPDATE = ord("s")
_ERROR = ord("e")


def mask(key: bytes, data: bytes) -> bytes:
    """XOR `data` with the repeated 4-byte `key` (client frames must be masked)."""
    n = len(data)
    stream = (key * ((n >> 2) + 1))[:n]
    return (int.from_bytes(data, "little") ^ int.from_bytes(stream, "little")).to_bytes(n, "little")


def client_frame(payload: bytes, key: bytes, opcode: int = 0x1) -> bytes:
    n = len(payload)
    if n < 126:
        head = bytes((0x80 | opcode, 0x80 | n))
    elif n <= 0xFFFF:
        head = bytes((0x80 | opcode, 0x80 | 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((0x80 | opcode, 0x80 | 127)) + n.to_bytes(8, "big")
    return head + key + mask(key, payload)


class WsClient(asyncio.Protocol):
    """One WebSocket connection. Counts what arrives; calls `on_frames` per TCP read.

    `on_frames(client, payloads, received_at)` gets the text payloads of one
    read (only when `keep_payloads` is set; otherwise an empty list) and the
    perf_counter time the read arrived; `client.new_readings` and
    `client.new_errors` are how many sensor_data_update and error frames that
    read held.
    """

    def __init__(self, host: str, port: int, path: str, on_frames=None, keep_payloads: bool = False):
        self.host, self.port, self.path = host, port, path
        self.on_frames = on_frames
        self.keep_payloads = keep_payloads
        loop = asyncio.get_running_loop()
        self.opened: asyncio.Future = loop.create_future()
        self.closed: asyncio.Future = loop.create_future()
        self.readings = 0  # sensor_data_update frames received
        self.errors = 0    # error frames received
        self.refused = 0   # of which OVERLOADED: readings the hub did not accept (backpressure), not lost
        self.others = 0    # any other text frame (device_status, pong)
        self.new_readings = 0  # in the last TCP read
        self.new_errors = 0
        self.first_error: bytes | None = None
        self.sent = 0
        self.transport: asyncio.Transport | None = None
        self._buf = bytearray()
        self._upgraded = False
        self._key = os.urandom(4)  # one masking key per connection keeps sending cheap

    @classmethod
    async def connect(cls, host: str, port: int, path: str, **kwargs) -> "WsClient":
        loop = asyncio.get_running_loop()
        _, client = await loop.create_connection(lambda: cls(host, port, path, **kwargs), host, port)
        await client.opened
        return client

    # --- asyncio.Protocol -----------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        key = base64.b64encode(os.urandom(16)).decode()
        transport.write(
            (
                f"GET {self.path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )

    def data_received(self, data: bytes) -> None:
        now = time.perf_counter()
        buf = self._buf
        buf += data
        if not self._upgraded:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            status_line = bytes(buf[: buf.find(b"\r\n")])
            if b" 101 " not in status_line:
                self.opened.set_exception(ConnectionError(f"{self.path}: handshake refused: {status_line.decode(errors='replace')}"))
                self.transport.close()
                return
            del buf[: end + 4]
            self._upgraded = True
            self.opened.set_result(None)
        self._parse(now)

    def connection_lost(self, exc) -> None:
        if not self.opened.done():
            self.opened.set_exception(ConnectionError(f"{self.path}: closed before the handshake"))
        if not self.closed.done():
            self.closed.set_result(None)

    # --- frames -----------------------------------------------------------------

    def _parse(self, now: float) -> None:
        buf = self._buf
        n = len(buf)
        i = 0
        readings = errors = 0
        payloads = [] if self.keep_payloads else None
        while n - i >= 2:
            length = buf[i + 1] & 0x7F
            head = 2
            if length == 126:
                if n - i < 4:
                    break
                length = int.from_bytes(buf[i + 2 : i + 4], "big")
                head = 4
            elif length == 127:
                if n - i < 10:
                    break
                length = int.from_bytes(buf[i + 2 : i + 10], "big")
                head = 10
            end = i + head + length
            if end > n:
                break
            opcode = buf[i] & 0x0F
            if opcode == 0x1:
                kind = buf[i + head + 9] if length > 9 else 0
                if kind == _SENSOR_DATA_UPDATE:
                    readings += 1
                elif kind == _ERROR:
                    errors += 1
                    if b'"OVERLOADED"' in buf[i + head : end]:
                        self.refused += 1
                    elif self.first_error is None:
                        self.first_error = bytes(buf[i + head : end])
                else:
                    self.others += 1
                if payloads is not None:
                    payloads.append(bytes(buf[i + head : end]))
            elif opcode == 0x9:  # ping: answer with the same payload
                self.transport.write(client_frame(bytes(buf[i + head : end]), self._key, 0xA))
            elif opcode == 0x8:
                self.transport.close()
            i = end
        if i:
            del buf[:i]
        self.readings += readings
        self.new_readings = readings
        self.errors += errors
        self.new_errors = errors
        if self.on_frames is not None and (readings or errors or payloads):
            self.on_frames(self, payloads or [], now)

    def send(self, payloads: list[bytes]) -> None:
        """Send text messages, framed and masked, in one write."""
        key = self._key
        self.transport.write(b"".join(client_frame(p, key) for p in payloads))
        self.sent += len(payloads)

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(client_frame((1000).to_bytes(2, "big"), self._key, 0x8))
            self.transport.close()
