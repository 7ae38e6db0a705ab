"""Broadcast frames built once, and each client's frames written in one go.

Tornado's `write_message`, called once per subscriber per event, re-encodes
the text, builds a frame header, makes a Future and a `send()` system call, and
wraps the result in a new asyncio Task: at ten dashboards that was two thirds
of the hub's CPU (docs/perf.md). Yet a server's frames are never masked, so
without compression the frame of a text message is the same bytes for every
client. The fan-out therefore builds it once (`text_frame`), and an `Outbox`
gathers each connection's frames during one turn of the event loop and hands
them over together at the start of the next: one IOStream write, one system
call per connection however many readings arrived meanwhile.

Connections that negotiated compression get no pre-built frames
(`accepts_prebuilt`); the fan-out sends them text through Tornado as before.
"""

from __future__ import annotations

import asyncio
import logging
import struct
from typing import Protocol

from tornado.websocket import WebSocketHandler, WebSocketProtocol13

log = logging.getLogger("smartanom.websocket")


def text_frame(text: str) -> bytes:
    """One unmasked, unfragmented, uncompressed RFC 6455 text frame holding `text`."""
    payload = text.encode()
    n = len(payload)
    if n < 126:
        return bytes((0x81, n)) + payload
    if n <= 0xFFFF:
        return struct.pack("!BBH", 0x81, 126, n) + payload
    return struct.pack("!BBQ", 0x81, 127, n) + payload


def accepts_prebuilt(handler: WebSocketHandler) -> bool:
    """Whether pre-built frames may go straight to this open connection's IOStream.

    True only for a server-side RFC 6455 connection without permessage-deflate:
    then Tornado itself would write exactly `text_frame(text)`. Decided once the
    handshake is done, when compression has been negotiated or not for good.
    """
    ws = handler.ws_connection
    return (
        isinstance(ws, WebSocketProtocol13)
        and not ws.mask_outgoing
        # Tornado keeps the negotiated compressor privately; None means no compression.
        and getattr(ws, "_compressor", None) is None
    )


class FrameSink(Protocol):
    def send_frames(self, data: bytes) -> None:
        """Write already framed bytes to the client (or drop them if it is closing)."""


class Outbox:
    """Frames waiting for the end of this loop turn, per connection, in order."""

    def __init__(self) -> None:
        self._pending: dict[FrameSink, list[bytes]] = {}

    def add(self, conn: FrameSink, frame: bytes) -> None:
        frames = self._pending.get(conn)
        if frames is None:
            if not self._pending:
                # Readings that arrive in this same turn (other clients' frames
                # already read, a plugin's batch) join the batch; nothing waits longer.
                asyncio.get_running_loop().call_soon(self.flush)
            self._pending[conn] = [frame]
        else:
            frames.append(frame)

    def take(self, conn: FrameSink) -> bytes | None:
        """Remove and return `conn`'s waiting frames (so a direct reply can follow them in order)."""
        frames = self._pending.pop(conn, None)
        if not frames:
            return None
        return frames[0] if len(frames) == 1 else b"".join(frames)

    def flush(self) -> None:
        pending, self._pending = self._pending, {}
        for conn, frames in pending.items():
            try:
                conn.send_frames(frames[0] if len(frames) == 1 else b"".join(frames))
            except Exception:
                # One broken connection must not cost the others their updates.
                log.exception("Sending to %r failed", conn)

    def __len__(self) -> int:
        return len(self._pending)
