"""One Modbus bus (a serial RS-485 line or a TCP connection): the plugin's only I/O.

pymodbus does the protocol. This module adds what a half-duplex field bus
needs on top: one request at a time, a quiet `gap` between requests, and
pymodbus' mixture of exceptions and error responses turned into two errors of
ours: `ReadFailed` (this request got no usable answer; the bus is fine) and
`BusDown` (no connection: adapter unplugged, gateway unreachable).
"""

from __future__ import annotations

import asyncio
import logging

from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusException

from smartanom.builtin.modbus.config import ModbusOptions

# Modbus exception codes a probe may answer with, for messages people can act on.
EXCEPTION_CODES = {
    1: "illegal function (wrong register type?)",
    2: "illegal data address (wrong address?)",
    3: "illegal data value (wrong data type / register count?)",
    4: "slave device failure",
    5: "acknowledge",
    6: "slave device busy",
    10: "gateway path unavailable",
    11: "gateway target device failed to respond",
}


class ReadFailed(Exception):
    """A read got no usable answer: timeout, CRC error, exception response."""


class BusDown(Exception):
    """The bus itself is unreachable: the serial port or the TCP connection is gone."""


class ModbusBus:
    def __init__(self, options: ModbusOptions):
        self.name = options.bus_name
        self.gap = options.gap
        # pymodbus' own retries and automatic reconnection are off: the poller
        # retries (with the gap between attempts) and reconnects with backoff,
        # so both are visible in our logs and follow our settings.
        if options.transport == "rtu":
            self._client = AsyncModbusSerialClient(
                options.port, timeout=options.timeout, retries=0, reconnect_delay=0, **options.serial_settings
            )
        else:
            self._client = AsyncModbusTcpClient(
                options.host, port=options.tcp_port, timeout=options.timeout, retries=0, reconnect_delay=0
            )
        # pymodbus drops a TCP connection after a few unanswered requests in a
        # row; behind a gateway that is one dead probe, not a dead bus, and the
        # reconnect churn would hide the real problem. A gateway that really
        # went away resets or refuses the connection, which is seen at once.
        self._client.set_max_no_responses(1_000_000)
        self._lock = asyncio.Lock()
        self._quiet_from = 0.0  # loop time when the bus may carry the next request

    @property
    def connected(self) -> bool:
        return self._client.connected

    async def connect(self) -> None:
        """Open the serial port or TCP connection. Raises BusDown."""
        self._client.close()
        if not await self._client.connect():
            raise BusDown(f"cannot connect to {self.name}")

    def close(self) -> None:
        self._client.close()

    async def read(self, slave: int, register: str, address: int, count: int) -> list[int]:
        """Read `count` registers from one slave, waiting for the bus to be free and quiet.

        Raises ReadFailed or BusDown; never returns a partial or made-up result.
        """
        call = self._client.read_holding_registers if register == "holding" else self._client.read_input_registers
        response = await self._request(lambda: call(address, count=count, device_id=slave))
        registers = list(getattr(response, "registers", []) or [])
        if len(registers) != count:
            raise ReadFailed(f"asked for {count} register(s), got {len(registers)}")
        return registers

    async def write(self, slave: int, register: str, address: int, value: int) -> None:
        """Write one coil (register 'coil', value 0/1) or one holding register, in turn
        with the reads. Raises ReadFailed (no usable answer) or BusDown."""
        if register == "coil":
            await self._request(lambda: self._client.write_coil(address, bool(value), device_id=slave))
        else:
            await self._request(lambda: self._client.write_register(address, value, device_id=slave))

    async def _request(self, send):
        """One request at a time, after the quiet gap; pymodbus' failures turned into ours."""
        async with self._lock:
            loop = asyncio.get_running_loop()
            wait = self._quiet_from - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            try:
                return await self._answer(send)
            finally:
                self._quiet_from = loop.time() + self.gap

    async def _answer(self, send):
        if not self._client.connected:
            raise BusDown(f"{self.name} is not connected")
        try:
            response = await send()
        except (ConnectionException, OSError) as exc:
            raise BusDown(f"{self.name}: {_short(exc)}") from None
        except ModbusException as exc:
            # Timeouts (including frames dropped for a bad CRC) arrive as ModbusIOException.
            if not self._client.connected:
                raise BusDown(f"{self.name}: connection lost") from None
            raise ReadFailed(f"no answer within the timeout ({_short(exc)})") from None
        if response.isError():
            code = getattr(response, "exception_code", None)
            raise ReadFailed(f"exception response {code}: {EXCEPTION_CODES.get(code, 'unknown code')}")
        return response


def _short(exc: Exception) -> str:
    text = str(exc)
    return text.split("] ", 1)[-1] if "] " in text else text


def quiet_pymodbus_logging() -> None:
    """Stop pymodbus logging every timeout as an error with a frame dump.

    The poller reports each failing probe once (and its recovery), which is what
    an installer needs; with --log-level DEBUG pymodbus keeps talking.
    """
    logger = logging.getLogger("pymodbus")
    if logger.level == logging.NOTSET and logging.getLogger().getEffectiveLevel() > logging.DEBUG:
        logger.setLevel(logging.CRITICAL)
