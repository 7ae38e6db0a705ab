"""A real pymodbus server for the modbus plugin's tests: TCP on loopback or RTU on a pty pair.

Each slave gets known holding and input registers. A slave can be `muted`
(it hears requests and never answers, like an unplugged probe on a live bus)
or `garbled` (its answers arrive with a broken CRC). The server can be stopped
and started again on the same address, like a gateway that reboots.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import time

from pymodbus.framer import FramerType
from pymodbus.server import ModbusSerialServer, ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

# Registers each slave serves (addresses 0..SIZE-1 of each table); unset ones read 0.
SIZE = 128


async def pty_pair(one: str, other: str) -> subprocess.Popen:
    """A socat process joining two ptys, linked at paths `one` and `other`: a serial cable."""
    if shutil.which("socat") is None:
        raise RuntimeError("socat is needed for the RTU tests (apt-get install socat)")
    socat = subprocess.Popen(
        ["socat", f"pty,raw,echo=0,link={one}", f"pty,raw,echo=0,link={other}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while not (os.path.exists(one) and os.path.exists(other)):
        if time.monotonic() > deadline or socat.poll() is not None:
            raise RuntimeError("socat did not create the pty pair")
        await asyncio.sleep(0.02)
    return socat


class ProbeServer:
    def __init__(self, slaves: dict[int, dict[str, dict[int, int]]]):
        """slaves: {slave id: {"holding": {address: value}, "input": {address: value}}}."""
        self.slaves = slaves
        self.muted: set[int] = set()
        self.garbled: set[int] = set()
        self.requests: list[tuple[float, int, int]] = []  # (monotonic time, slave, function code)
        self._server = None

    def _devices(self) -> list[SimDevice]:
        devices = []
        for slave, tables in self.slaves.items():
            blocks = []
            for table in ("holding", "input"):
                values = [0] * SIZE
                for address, value in tables.get(table, {}).items():
                    values[address] = value
                blocks.append([SimData(0, values=values, datatype=DataType.REGISTERS)])
            bits = [SimData(0, count=SIZE, values=False, datatype=DataType.BITS)]
            devices.append(SimDevice(id=slave, simdata=(bits, list(bits), blocks[0], blocks[1])))
        return devices

    def _trace_pdu(self, sending: bool, pdu):
        if not sending:
            self.requests.append((time.monotonic(), pdu.dev_id, pdu.function_code))
            if pdu.dev_id in self.muted:
                return None  # pymodbus sends no answer for a request it did not get
        return pdu

    def _trace_packet(self, sending: bool, data: bytes) -> bytes:
        # RTU frames start with the slave id and end with a 2-byte CRC.
        if sending and data and data[0] in self.garbled:
            return data[:-1] + bytes([data[-1] ^ 0xFF])
        return data

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.shutdown()
            self._server = None


class TcpProbeServer(ProbeServer):
    port: int = 0

    async def start(self) -> "TcpProbeServer":
        # Port 0 the first time; the same port again after a stop (a gateway coming back).
        self._server = ModbusTcpServer(
            self._devices(), address=("127.0.0.1", self.port), trace_pdu=self._trace_pdu
        )
        await self._server.serve_forever(background=True)
        self.port = self._server.transport.sockets[0].getsockname()[1]
        return self


class RtuProbeServer(ProbeServer):
    """Serves on one end of a socat pty pair; the hub opens `client_port`, the other end."""

    def __init__(self, slaves, directory, baudrate: int = 9600):
        super().__init__(slaves)
        self.server_port = os.path.join(str(directory), "probe-side")
        self.client_port = os.path.join(str(directory), "hub-side")
        self.baudrate = baudrate
        self._socat: subprocess.Popen | None = None

    async def start(self) -> "RtuProbeServer":
        self._socat = await pty_pair(self.server_port, self.client_port)
        self._server = ModbusSerialServer(
            self._devices(), framer=FramerType.RTU, port=self.server_port, baudrate=self.baudrate,
            trace_pdu=self._trace_pdu, trace_packet=self._trace_packet,
        )
        await self._server.serve_forever(background=True)
        return self

    async def stop(self) -> None:
        await super().stop()
        if self._socat is not None:
            self._socat.terminate()
            self._socat.wait(timeout=5)
            self._socat = None
