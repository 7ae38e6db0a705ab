"""How far behind a WebSocket client is: Tornado's private write counters, in one place.

Tornado's IOStream counts the bytes handed to it and those the kernel has
taken only in private attributes (6.x: `_total_write_index`,
`_total_write_done_index`). The hub needs their difference to notice a client
that has stopped reading (core/websocket.py closes it), so every use goes
through `SendBuffer`: after a Tornado upgrade this is the one place to fix,
and tests/test_websocket_slow.py is what notices.
"""

from __future__ import annotations

import time

from tornado.iostream import IOStream


class SendBuffer:
    """One connection's outgoing bytes: what is unsent, the caps on it, and for how
    long it has been over the soft one (server.send_buffer)."""

    __slots__ = ("stream", "limit", "max_seconds", "_over_since")

    def __init__(self, stream: IOStream, limit: int, max_seconds: float):
        self.stream = stream
        self.limit = limit  # unsent bytes tolerated for max_seconds (server.send_buffer.max_bytes)
        self.max_seconds = max_seconds
        self._over_since: float | None = None
        # The hard cap that bounds memory: a write beyond it raises StreamBufferFullError.
        stream.max_write_buffer_size = 4 * limit

    @property
    def unsent(self) -> int:
        """Bytes handed to the IOStream and not yet taken by the kernel."""
        stream = self.stream
        return stream._total_write_index - stream._total_write_done_index

    @property
    def sent(self) -> int:
        """Bytes the kernel has taken from this connection so far (for GET /metrics)."""
        return self.stream._total_write_done_index

    def overdue(self, full: bool = False) -> float | None:
        """Call after each write (`full`: the hard cap refused it). None while the
        client keeps up; else the seconds it has been behind, once that is too long."""
        stream = self.stream  # inlined `unsent`: this runs once per write per subscriber
        if not full and stream._total_write_index - stream._total_write_done_index <= self.limit:
            self._over_since = None
            return None
        now = time.monotonic()
        if self._over_since is None:
            self._over_since = now
        held = now - self._over_since
        return held if full or held >= self.max_seconds else None

    def lift_cap(self) -> None:
        """Room for the close frame of a client being dropped for its backlog."""
        self.stream.max_write_buffer_size = None
