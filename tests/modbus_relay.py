"""A real pymodbus RTU server behind a relay that misbehaves the way a field bus does.

The hub opens `client_port`; the relay passes each request to a pymodbus RTU
server (tests/modbus_server.RtuProbeServer, on its own pty pair) and passes
the server's answer back, after `delay(n)` seconds for the n-th request, with
`noise` before it, the request echoed first (`echo`), the slave id replaced
(`wrong_slave`), or the last `truncate` bytes cut off; requests for which
`ignores(function, address, count)` is true get no answer at all, as from a
probe that stays silent on registers or functions it does not have. Unlike
tests/modbus_misbehaving.py the answers are pymodbus' own, so this also checks
that peer's assumptions. Written for the fresh-eyes review of issue 13.
"""

from __future__ import annotations

import asyncio
import os
import struct
import subprocess

from modbus_misbehaving import crc
from modbus_server import RtuProbeServer, pty_pair


class RelayedRtuServer:
    def __init__(self, slaves, directory, delay=lambda n: 0.0):
        self.server = RtuProbeServer(slaves, directory)
        self.relay_port = os.path.join(str(directory), "relay-side")
        self.client_port = os.path.join(str(directory), "relay-hub-side")
        self.delay = delay
        self.echo = False
        self.noise = b""
        self.wrong_slave: int | None = None
        self.truncate = 0
        self.ignores = lambda function, address, count: False  # requests the probe never answers
        self.requests = 0
        self._socat: subprocess.Popen | None = None
        self._hub_fd: int | None = None
        self._server_fd: int | None = None
        self._pending: set[asyncio.Task] = set()
        self._buffer = b""
        self._answers: asyncio.Queue[bytes] = asyncio.Queue()
        self._from_server = b""
        self._lock = asyncio.Lock()
        self._previous: asyncio.Task | None = None

    async def start(self) -> "RelayedRtuServer":
        await self.server.start()
        self._socat = await pty_pair(self.relay_port, self.client_port)
        loop = asyncio.get_running_loop()
        self._hub_fd = os.open(self.relay_port, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        self._server_fd = os.open(self.server.client_port, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        loop.add_reader(self._hub_fd, self._from_hub)
        loop.add_reader(self._server_fd, self._server_readable)
        return self

    def _from_hub(self) -> None:
        try:
            self._buffer += os.read(self._hub_fd, 256)
        except BlockingIOError:
            return
        while len(self._buffer) >= 8:  # FC 3/4 requests are 8 bytes
            frame, self._buffer = self._buffer[:8], self._buffer[8:]
            if crc(frame[:6]) != frame[6:]:
                self._buffer = b""
                return
            if self.echo:
                os.write(self._hub_fd, frame)
            if self.ignores(*struct.unpack(">BHH", frame[1:6])):
                self.requests += 1
                continue
            # Answers leave in the order of their requests, as from a probe that
            # works through them one at a time: a late answer delays the next.
            task = asyncio.get_running_loop().create_task(self._relay(frame, self.delay(self.requests), self._previous))
            self._previous = task
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)
            self.requests += 1

    def _server_readable(self) -> None:
        try:
            self._from_server += os.read(self._server_fd, 256)
        except BlockingIOError:
            return
        while len(self._from_server) >= 5:
            size = 5 if self._from_server[1] & 0x80 else 5 + self._from_server[2]
            if len(self._from_server) < size:
                return
            frame, self._from_server = self._from_server[:size], self._from_server[size:]
            self._answers.put_nowait(frame)

    async def _relay(self, request: bytes, delay: float, previous: asyncio.Task | None) -> None:
        started = asyncio.get_running_loop().time()
        async with self._lock:  # one request at a time on the server's line
            os.write(self._server_fd, request)
            try:
                answer = await asyncio.wait_for(self._answers.get(), 2)
            except asyncio.TimeoutError:
                return
        left = delay - (asyncio.get_running_loop().time() - started)
        if left > 0:
            await asyncio.sleep(left)
        if previous is not None:
            await asyncio.wait([previous])
        if self.wrong_slave is not None:
            body = bytes([self.wrong_slave]) + answer[1:-2]
            answer = body + crc(body)
        if self.truncate:
            answer = answer[:-self.truncate]
        os.write(self._hub_fd, self.noise + answer)

    async def stop(self) -> None:
        for task in list(self._pending):
            task.cancel()
        loop = asyncio.get_running_loop()
        for fd in (self._hub_fd, self._server_fd):
            if fd is not None:
                loop.remove_reader(fd)
                os.close(fd)
        self._hub_fd = self._server_fd = None
        if self._socat is not None:
            self._socat.terminate()
            self._socat.wait(timeout=5)
            self._socat = None
        await self.server.stop()

