"""The serial port: open, read, close, with pyserial's errors turned into ours.

Opening and closing a USB serial port can block for seconds (a slow adapter,
a kernel waiting to drain output on close), so both run in a worker thread;
only reading, through pyserial-asyncio's transport, happens on the event loop.
Every open re-resolves the configured path, so a /dev/serial/by-id/ link that
now points at another ttyUSBn after a replug is followed.
"""

from __future__ import annotations

import asyncio
import errno
import fcntl
import os
import termios
from typing import Callable

import serial
import serial_asyncio

from smartanom.builtin.serial_arduino.config import SerialArduinoOptions

_PARITY = {"none": serial.PARITY_NONE, "even": serial.PARITY_EVEN, "odd": serial.PARITY_ODD,
           "mark": serial.PARITY_MARK, "space": serial.PARITY_SPACE}


class PortUnavailable(Exception):
    """The port could not be opened; the message says why and what to do.

    `missing`: the path does not exist (unplugged), as opposed to existing and failing.
    """

    def __init__(self, message: str, missing: bool = False):
        super().__init__(message)
        self.missing = missing


class _Serial(serial.Serial):
    """A pyserial port that the asyncio transport cannot close.

    pyserial-asyncio flushes and closes the port from the event loop when the
    transport closes; those calls are no-ops here, and `close_now` (run in a
    worker thread by `SerialConnection.close`) does the real close.
    """

    _transport_owned = False

    def flush(self) -> None:
        if not self._transport_owned:
            super().flush()

    def close(self) -> None:
        if not self._transport_owned:
            super().close()

    def close_now(self) -> None:
        super().close()


def resolve(path: str) -> str:
    """Where the configured path points now (follows by-id symlinks)."""
    return os.path.realpath(path)


def open_blocking(options: SerialArduinoOptions) -> tuple[_Serial, str]:
    """Open the configured port (blocking: call in a worker thread). Returns it and its real path."""
    real = resolve(options.port)
    try:
        port = _Serial(
            port=real,
            baudrate=options.baudrate,
            bytesize=options.bytesize,
            parity=_PARITY[options.parity],
            stopbits=options.stopbits,
            rtscts=options.rtscts,
            xonxoff=options.xonxoff,
            timeout=0,
            # Two programs reading one Arduino each get half the lines; refuse instead.
            exclusive=True,
        )
    except (serial.SerialException, OSError, ValueError) as exc:
        raise PortUnavailable(explain_open_error(options.port, real, exc), missing=not os.path.exists(real)) from None
    try:
        # pyserial's `exclusive` is an advisory flock that other programs (screen,
        # cat, a serial monitor) ignore; TIOCEXCL makes the kernel refuse their open().
        fcntl.ioctl(port.fd, termios.TIOCEXCL)
    except OSError:
        pass  # not a tty that supports it: the flock still stands
    return port, real


def explain_open_error(path: str, real: str, exc: BaseException) -> str:
    """A message for the installer: what went wrong opening `path`, and the fix."""
    shown = path if real == path else f"{path} (-> {real})"
    code = getattr(exc, "errno", None)
    text = str(exc)
    if code == errno.ENOENT or "No such file" in text:
        return (
            f"serial port {shown} does not exist. Is the Arduino plugged in? "
            "`ls -l /dev/serial/by-id/` lists the connected ones; put that path in `port:`"
        )
    if code == errno.EACCES or "Permission denied" in text:
        return (
            f"no permission to open serial port {shown}. Add the user running the hub to the "
            "dialout group: `sudo usermod -aG dialout $USER`, then log out and back in (or reboot)"
        )
    if code in (errno.EAGAIN, errno.EBUSY) or "exclusively lock" in text:
        return (
            f"serial port {shown} is in use by another program (Arduino IDE serial monitor, "
            "screen, another hub instance?). Close it; `sudo fuser -v " + real + "` shows who has it"
        )
    return f"cannot open serial port {shown}: {text}"


class _LineReader(asyncio.Protocol):
    """Hands every chunk the transport reads to `on_data`; remembers how the connection ended."""

    def __init__(self, on_data: Callable[[bytes], None]):
        self.on_data = on_data
        self.lost: asyncio.Future = asyncio.get_running_loop().create_future()

    def data_received(self, data: bytes) -> None:
        self.on_data(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.lost.done():
            self.lost.set_result(exc)


class SerialConnection:
    """An open port being read on the event loop."""

    def __init__(self, port: _Serial, real_path: str, transport: asyncio.Transport, reader: _LineReader):
        self.port = port
        self.real_path = real_path
        self._transport = transport
        self._reader = reader

    @classmethod
    async def open(cls, options: SerialArduinoOptions, on_data: Callable[[bytes], None]) -> "SerialConnection":
        """Open the port off the loop and start reading. Raises PortUnavailable."""
        loop = asyncio.get_running_loop()
        opening = loop.run_in_executor(None, open_blocking, options)
        try:
            port, real = await asyncio.shield(opening)
        except asyncio.CancelledError:
            # The hub is stopping mid-open; the thread cannot be stopped, so
            # close what it opens rather than leave the port held.
            opening.add_done_callback(_close_when_opened)
            raise
        port._transport_owned = True
        reader = _LineReader(on_data)
        transport, _ = await serial_asyncio.connection_for_serial(loop, lambda: reader, port)
        return cls(port, real, transport, reader)

    def write(self, data: bytes) -> None:
        """Queue bytes for the Arduino (relay commands); the transport writes them off the loop's back."""
        if not self._transport.is_closing():
            self._transport.write(data)

    async def wait_lost(self) -> str:
        """Wait until the port fails (unplugged, EOF); returns why."""
        exc = await asyncio.shield(self._reader.lost)
        if exc is None:
            return "port closed"
        if "returned no data" in str(exc):
            # pyserial's wording for end-of-file on a tty: the device node went away.
            return "the device disconnected (unplugged or reset by the USB bus)"
        return str(exc)

    async def close(self) -> None:
        """Stop reading and close the port in a worker thread."""
        if not self._transport.is_closing():
            self._transport.abort()
        # The transport is done with the port once it has reported the loss.
        await asyncio.shield(self._reader.lost)
        await asyncio.get_running_loop().run_in_executor(None, self.port.close_now)


def _close_when_opened(opening: asyncio.Future) -> None:
    if not opening.cancelled() and opening.exception() is None:
        port, _ = opening.result()
        asyncio.get_running_loop().run_in_executor(None, port.close_now)
