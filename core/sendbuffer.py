"""How far behind a WebSocket client is: Tornado's private write counters, in one place.

Tornado's IOStream counts the bytes handed to it and those the kernel has
taken only in private attributes (6.x: `_total_write_index`,
`_total_write_done_index`). The hub needs their difference to notice a client
that has stopped reading (core/websocket.py closes it), so every use goes
through `SendBuffer`: after a Tornado upgrade this is the one place to fix,
and tests/test_websocket_slow.py is what notices.
"""

from __future__ import annotations

from tornado.iostream import IOStream


class SendBuffer:
    """One connection's outgoing bytes: what is unsent, and the caps on it."""

    __slots__ = ("stream", "limit")

    def __init__(self, stream: IOStream, limit: int):
        self.stream = stream
        self.limit = limit  # unsent bytes tolerated for a while (server.send_buffer.max_bytes)
        # The hard cap that bounds memory: a write beyond it raises StreamBufferFullError.
        stream.max_write_buffer_size = 4 * limit

    @property
    def unsent(self) -> int:
        """Bytes handed to the IOStream and not yet taken by the kernel."""
        stream = self.stream
        return stream._total_write_index - stream._total_write_done_index

    def over_limit(self) -> bool:
        stream = self.stream  # inlined `unsent`: this runs once per write per subscriber
        return stream._total_write_index - stream._total_write_done_index > self.limit

    def lift_cap(self) -> None:
        """Room for the close frame of a client being dropped for its backlog."""
        self.stream.max_write_buffer_size = None
