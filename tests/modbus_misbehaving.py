"""Modbus peers that misbehave the way field devices do, for the modbus plugin's tests.

`tests/modbus_server.py` is a well-behaved pymodbus server. These are the
others, written here because no library misbehaves on purpose: an RTU probe on
a pty that answers late (after the hub's timeout), echoes the request like an
RS-485 adapter without echo suppression, puts a stray byte before its answer
or answers with the wrong function code; and a TCP device whose answer's byte
count disagrees with its MBAP length. They speak real Modbus on a real pty or
socket: the hub under test cannot tell them from a device.
"""

from __future__ import annotations

import asyncio
import os
import struct
import subprocess
import time

from pymodbus.framer.rtu import FramerRTU

from modbus_server import pty_pair


def crc(frame: bytes) -> bytes:
    return FramerRTU.compute_CRC(frame).to_bytes(2, "big")


class Registers:
    """{slave: {"holding"|"input": {address: value}}}; unset registers read 0."""

    def __init__(self, slaves: dict[int, dict[str, dict[int, int]]]):
        self.slaves = slaves

    def read(self, slave: int, function: int, address: int, count: int) -> list[int]:
        table = self.slaves[slave].get("holding" if function == 3 else "input", {})
        return [table.get(a, 0) for a in range(address, address + count)]


class LateRtuProbe(Registers):
    """An RTU probe on one end of a socat pty pair; the hub opens `client_port`.

    `delay(n)` gives the seconds before answering the n-th request (0-based);
    `echo` sends every request back first (an adapter echoing its own transmit),
    `noise` is sent just before each answer, `wrong_function` answers FC 4 to FC 3.
    `answers` records (time sent, slave, address, registers) for each answer.
    """

    def __init__(self, slaves, directory, delay=lambda n: 0.0, echo: bool = False, noise: bytes = b"", wrong_function: bool = False):
        super().__init__(slaves)
        self.server_port = os.path.join(str(directory), "late-probe-side")
        self.client_port = os.path.join(str(directory), "late-hub-side")
        self.delay, self.echo, self.noise, self.wrong_function = delay, echo, noise, wrong_function
        self.requests = 0
        self.answers: list[tuple[float, int, int, list[int]]] = []
        self._socat: subprocess.Popen | None = None
        self._fd: int | None = None
        self._buffer = b""
        self._pending: set[asyncio.Task] = set()

    async def start(self) -> "LateRtuProbe":
        self._socat = await pty_pair(self.server_port, self.client_port)
        self._fd = os.open(self.server_port, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        asyncio.get_running_loop().add_reader(self._fd, self._readable)
        return self

    def _readable(self) -> None:
        try:
            self._buffer += os.read(self._fd, 256)
        except BlockingIOError:
            return
        # Requests for FC 3/4 are exactly 8 bytes: slave, function, address, count, CRC.
        while len(self._buffer) >= 8:
            frame, self._buffer = self._buffer[:8], self._buffer[8:]
            if crc(frame[:6]) != frame[6:]:
                self._buffer = b""  # out of step: start afresh with the next request
                return
            slave, function, address, count = struct.unpack(">BBHH", frame[:6])
            if slave not in self.slaves or function not in (3, 4):
                continue
            if self.echo:
                os.write(self._fd, frame)
            task = asyncio.get_running_loop().create_task(self._answer(self.delay(self.requests), slave, function, address, count))
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)
            self.requests += 1

    async def _answer(self, delay: float, slave: int, function: int, address: int, count: int) -> None:
        await asyncio.sleep(delay)
        registers = self.read(slave, function, address, count)
        sent_function = 4 if (self.wrong_function and function == 3) else function
        body = bytes([slave, sent_function, 2 * count]) + b"".join(r.to_bytes(2, "big") for r in registers)
        os.write(self._fd, self.noise + body + crc(body))
        self.answers.append((time.monotonic(), slave, address, registers))

    async def stop(self) -> None:
        for task in list(self._pending):
            task.cancel()
        if self._fd is not None:
            asyncio.get_running_loop().remove_reader(self._fd)
            os.close(self._fd)
            self._fd = None
        if self._socat is not None:
            self._socat.terminate()
            self._socat.wait(timeout=5)
            self._socat = None


class MalformedTcpDevice(Registers):
    """A Modbus TCP device on a free loopback port whose answers can be malformed.

    While `malformed` is set, each answer's MBAP length counts two bytes fewer
    than it carries (the byte count and the registers disagree with it), as
    some cheap Ethernet probes do; otherwise it answers correctly. `delay(n)`
    gives the seconds before answering the n-th request, like a gateway waiting
    on a slow probe behind it (answers keep their request's transaction id).
    """

    def __init__(self, slaves):
        super().__init__(slaves)
        self.malformed = False
        self.delay = lambda n: 0.0
        self.requests = 0
        self.connections = 0
        self.port = 0
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task] = set()

    async def start(self) -> "MalformedTcpDevice":
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._handlers.add(asyncio.current_task())
        try:
            while True:
                header = await reader.readexactly(7)
                tid, _pid, length, unit = struct.unpack(">HHHB", header)
                pdu = await reader.readexactly(length - 1)
                function, address, count = struct.unpack(">BHH", pdu[:5])
                delay = self.delay(self.requests)
                self.requests += 1
                if delay:
                    await asyncio.sleep(delay)
                body = bytes([function, 2 * count]) + b"".join(r.to_bytes(2, "big") for r in self.read(unit, function, address, count))
                length = len(body) + 1 - (2 if self.malformed else 0)
                writer.write(struct.pack(">HHHB", tid, 0, length, unit) + body)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()
            self._handlers.discard(asyncio.current_task())

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for handler in list(self._handlers):
                handler.cancel()
            await asyncio.gather(*self._handlers, return_exceptions=True)
            await self._server.wait_closed()
            self._server = None
