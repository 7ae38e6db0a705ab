"""One Modbus bus (a serial RS-485 line or a TCP connection): the plugin's only I/O.

pymodbus does the protocol. This module adds what a half-duplex field bus
needs on top: one request at a time, a quiet `gap` between requests, and
pymodbus' mixture of exceptions and error responses turned into two errors of
ours: `ReadFailed` (this request got no usable answer; the bus is fine) and
`BusDown` (no connection: adapter unplugged, gateway unreachable).

It also makes sure that an answer is the answer to *this* request, which
pymodbus alone does not on RTU (no transaction id there): after a request goes
unanswered, the late answer is waited out and thrown away before the next
request (see `_wait_out_late_answer`), and a slave whose answer may still be
on its way, later than any wait, is resynchronised before it is read again
(see `_resync`); every answer's slave id, function code
and register count must match the request; leading noise bytes are skipped;
and a malformed frame (say a TCP answer whose byte count disagrees with its
MBAP length) fails the read at once instead of escaping into asyncio and
dropping the connection.
"""

from __future__ import annotations

import asyncio
import logging

from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusException
from pymodbus.pdu import ModbusPDU

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


class _ExceptionAnswer(ReadFailed):
    """The probe answered with a Modbus exception response."""


class _Refused(Exception):
    """Raised into pymodbus' pending request when the bytes that came back cannot be a frame."""


FUNCTION_CODES = {"holding": 3, "input": 4}
WRITE_FUNCTION_CODES = {"coil": 5, "holding": 6}  # write single coil / single register
# Silence on the line that means a frame is over (3.5 characters at 1200 baud,
# with room for USB adapters that deliver bytes in bursts).
QUIET = 0.03


class ModbusBus:
    def __init__(self, options: ModbusOptions):
        self.name = options.bus_name
        self.gap = options.gap
        # pymodbus' own retries and automatic reconnection are off: the poller
        # retries (with the gap between attempts) and reconnects with backoff,
        # so both are visible in our logs and follow our settings.
        traces = dict(trace_packet=self._on_packet, trace_pdu=self._on_pdu)
        self.rtu = options.transport == "rtu"
        if self.rtu:
            self._client = AsyncModbusSerialClient(
                options.port, timeout=options.timeout, retries=0, reconnect_delay=0,
                handle_local_echo=options.local_echo, **options.serial_settings, **traces,
            )
        else:
            self._client = AsyncModbusTcpClient(
                options.host, port=options.tcp_port, timeout=options.timeout, retries=0, reconnect_delay=0, **traces
            )
        # pymodbus' frame handler is wrapped (the one hook it offers between the
        # bytes and the decoded answer) for noise skipping and malformed frames.
        framer = self._client.ctx.framer
        framer.handleFrame = self._guard_frames(framer.handleFrame)
        self.timeout = options.timeout
        self.late_window = options.timeout
        self.late_answers = 0  # answers that came after their request had given up
        self.malformed = 0  # frames that could not be decoded
        self.resyncs = 0  # resynchronising reads answered (after a request went without its answer)
        self._expect: tuple[int, int] | None = None  # (slave, function code) of the request awaiting its answer
        self._gave_up_at: float | None = None  # loop time the last unanswered request timed out
        self._heard_at = 0.0  # loop time bytes last arrived
        self._late_at = 0.0  # loop time the last late answer was decoded
        # pymodbus drops a TCP connection after a few unanswered requests in a
        # row; behind a gateway that is one dead probe, not a dead bus, and the
        # reconnect churn would hide the real problem. A gateway that really
        # went away resets or refuses the connection, which is seen at once.
        self._client.set_max_no_responses(1_000_000)
        # RTU slaves whose last request went without its answer (timed out, or
        # got a refused or exception answer): that answer may still be on its
        # way, later than any wait, and would fit the next request of the same
        # shape. Such a slave is read again only after a resynchronising read
        # of a shape none of its items uses has been answered in that shape:
        # a probe answers in order, so everything asked before has then come.
        self._unsynced: set[int] = set()
        self._sync_reads = {slave: _sync_read(options.sensors, slave) for slave in {s.slave for s in options.sensors}}
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
        return await self._request(slave, FUNCTION_CODES[register], self._reader(slave, register, address, count), _registers(count))

    async def write(self, slave: int, register: str, address: int, value: int) -> None:
        """Write one coil (register 'coil', value 0/1) or one holding register, in turn
        with the reads (modbus outputs, output.py). Raises ReadFailed (no usable answer) or BusDown."""
        if register == "coil":
            send = lambda: self._client.write_coil(address, bool(value), device_id=slave)  # noqa: E731
        else:
            send = lambda: self._client.write_register(address, value, device_id=slave)  # noqa: E731
        await self._request(slave, WRITE_FUNCTION_CODES[register], send)

    def _reader(self, slave: int, register: str, address: int, count: int):
        call = self._client.read_holding_registers if register == "holding" else self._client.read_input_registers
        return lambda: call(address, count=count, device_id=slave)

    async def _request(self, slave: int, function: int, send, check=lambda response: response):
        """One request at a time, after the quiet gap and any late answer; the answer checked
        (slave, function code, then `check`, which returns the result or raises ReadFailed)."""
        async with self._lock:
            loop = asyncio.get_running_loop()
            wait = self._quiet_from - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            if self._gave_up_at is not None:
                await self._wait_out_late_answer()
            try:
                if slave in self._unsynced:
                    await self._resync(slave)
                self._expect = (slave, function)
                return check(await self._answer(slave, function, send))
            except ReadFailed:
                if self.rtu and self._sync_reads.get(slave) is not None:
                    self._unsynced.add(slave)
                raise
            finally:
                self._expect = None
                self._quiet_from = loop.time() + self.gap

    async def _resync(self, slave: int) -> None:
        """Read `slave` in a shape of its own until it answers in that shape. Raises ReadFailed.

        The answer's content does not matter (an exception answer will do: it
        cannot be mistaken for a value), only that it is no older request's.
        An older request's late answer, refused here for its shape, leaves the
        slave out of step, and the read that needed the resync fails.
        """
        register, address, count = self._sync_reads[slave]
        function = FUNCTION_CODES[register]
        self._expect = (slave, function)
        try:
            _registers(count)(await self._answer(slave, function, self._reader(slave, register, address, count)))
        except _ExceptionAnswer:
            pass
        except ReadFailed as exc:
            raise ReadFailed(f"not read: slave {slave} is out of step after a failed read ({exc})") from None
        finally:
            self._expect = None
        self._unsynced.discard(slave)
        self.resyncs += 1
        await asyncio.sleep(self.gap)  # the bus's quiet time before the read this cleared the way for

    async def _answer(self, slave: int, function: int, send):
        if not self._client.connected:
            raise BusDown(f"{self.name} is not connected")
        try:
            response = await send()
        except (ConnectionException, OSError) as exc:
            raise BusDown(f"{self.name}: {_short(exc)}") from None
        except _Refused as exc:
            raise ReadFailed(str(exc)) from None
        except ModbusException as exc:
            # Timeouts (including frames dropped for a bad CRC) arrive as ModbusIOException.
            if not self._client.connected:
                raise BusDown(f"{self.name}: connection lost") from None
            self._gave_up_at = asyncio.get_running_loop().time()
            # pymodbus says "No response received after 0 retries": its retries are
            # off (ours are counted in the stats), so its wording would mislead.
            detail = f"{self.timeout:g} s" if "No response received" in str(exc) else _short(exc)
            raise ReadFailed(f"no answer within the timeout ({detail})") from None
        if response.isError():
            code = getattr(response, "exception_code", None)
            raise _ExceptionAnswer(f"exception response {code}: {EXCEPTION_CODES.get(code, 'unknown code')}")
        # pymodbus skips frames from other slaves, but checks neither the function
        # code nor the size: an FC 4 answer to an FC 3 request decodes just fine.
        if slave and response.dev_id != slave:
            raise ReadFailed(f"answer from slave {response.dev_id}, asked slave {slave}; refused")
        if response.function_code != function:
            raise ReadFailed(f"answer has function code {response.function_code}, the request had {function}; refused")
        return response

    async def _wait_out_late_answer(self) -> None:
        """Let the answer to a request that timed out come, and throw it away.

        On RTU nothing but timing ties an answer to its request, and two
        requests of the same shape to one slave (pH at 0, temperature at 1)
        get answers of the same shape: a late pH answer arriving just after the
        temperature request was sent would be published as the temperature.
        So the bus stays silent until the late answer has come and the line
        is quiet, or for one more `timeout` (the late window) if none comes;
        whatever arrives meanwhile has no request waiting and is dropped. A
        TCP gateway bridging to RTU gets the same time to drop it on its side.
        """
        loop = asyncio.get_running_loop()
        gave_up, self._gave_up_at = self._gave_up_at, None
        window_end = gave_up + self.late_window
        while True:
            now = loop.time()
            quiet = now - self._heard_at >= QUIET
            answered = self._late_at > gave_up
            if (quiet and (answered or now >= window_end)) or now >= window_end + self.late_window:
                return
            await asyncio.sleep(0.01)

    def _on_packet(self, sending: bool, data: bytes) -> bytes:
        if not sending:
            self._heard_at = asyncio.get_running_loop().time()
        return data

    def _on_pdu(self, sending: bool, pdu: ModbusPDU) -> ModbusPDU:
        if not sending and self._expect is None:
            self.late_answers += 1
            self._late_at = asyncio.get_running_loop().time()
        return pdu

    def _guard_frames(self, handle_frame):
        def guarded(data: bytes, expected_slave: int, expected_tid: int):
            skip = 0
            if self.rtu and self._expect is not None:
                # An RTU answer starts with the slave id; a stray byte before it
                # (a 0x00 as an RS-485 line turns around) would make pymodbus
                # drop the whole frame on a CRC error.
                skip = next((i for i, byte in enumerate(data) if byte == self._expect[0]), len(data))
            try:
                used, pdu = handle_frame(data[skip:], expected_slave, expected_tid)
            except Exception as exc:  # noqa: BLE001 - raised inside asyncio's data_received otherwise
                self._refuse(f"malformed answer ({_short(exc)}); refused")
                return len(data), None  # drop it all: the next request starts clean
            return skip + used, pdu

        return guarded

    def _refuse(self, reason: str) -> None:
        self.malformed += 1
        pending = self._client.ctx.response_future
        if self._expect is not None and not pending.done():
            pending.set_exception(_Refused(reason))


def _sync_read(items, slave: int) -> tuple[str, int, int] | None:
    """A read (register type, address, count) for resynchronising `slave`, or None if it needs none.

    Its shape (function code, count) is one that none of the slave's items has,
    so no answer to them can pass for its answer; and it stays within registers
    the items read (adjacent ones joined), which the probe is known to serve: a
    probe may stay silent on a register it does not have. None when the items'
    shapes all differ (an answer can then only be taken for its own item's,
    which the shape check refuses) or when no such read exists (same-shaped
    items on registers apart; documented).
    """
    mine = [s for s in items if s.slave == slave]
    shapes = {(s.register_type, s.count) for s in mine}
    if len(shapes) == len(mine):
        return None
    for register in ("holding", "input"):
        blocks: list[list[int]] = []  # [start, length] of adjacent item registers
        for s in sorted((s for s in mine if s.register_type == register), key=lambda s: s.address):
            if blocks and blocks[-1][0] + blocks[-1][1] >= s.address:
                blocks[-1][1] = max(blocks[-1][1], s.address + s.count - blocks[-1][0])
            else:
                blocks.append([s.address, s.count])
        for start, length in blocks:
            count = next((c for c in range(min(length, 125), 0, -1) if (register, c) not in shapes), None)
            if count is not None:
                return register, start, count
    return None


def _registers(count: int):
    """The check of a read's answer: exactly `count` registers, returned as a list."""
    def check(response) -> list[int]:
        registers = list(getattr(response, "registers", []) or [])
        if len(registers) != count:
            raise ReadFailed(f"asked for {count} register(s), got {len(registers)}; refused")
        return registers
    return check


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
