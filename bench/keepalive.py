"""A minimal HTTP/1.1 client that keeps its connections open, as a browser does.

Tornado's own client opens a connection per request, which would charge every
request a TCP handshake that a dashboard in a browser does not pay. Enough
HTTP for the hub's JSON answers (Content-Length bodies); not a general client.
"""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit


class Pool:
    def __init__(self, url: str, size: int = 6):  # browsers open 6 connections per host
        parts = urlsplit(url)
        self.host, self.port, self.size = parts.hostname, parts.port, size
        self._idle: asyncio.Queue = asyncio.Queue()
        self._opened = 0

    async def _connection(self):
        if self._idle.empty() and self._opened < self.size:
            self._opened += 1
            return await asyncio.open_connection(self.host, self.port)
        return await self._idle.get()

    async def get(self, path: str) -> tuple[int, bytes]:
        reader, writer = await self._connection()
        try:
            writer.write(f"GET {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n\r\n".encode())
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            status = int(lines[0].split()[1])
            length = next(int(line.split(":", 1)[1]) for line in lines if line.lower().startswith("content-length:"))
            body = await reader.readexactly(length)
        except BaseException:
            writer.close()
            self._opened -= 1
            raise
        self._idle.put_nowait((reader, writer))
        return status, body

    def close(self) -> None:
        while not self._idle.empty():
            self._idle.get_nowait()[1].close()
        self._opened = 0
