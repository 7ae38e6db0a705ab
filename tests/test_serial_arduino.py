"""The serial_arduino platform against real pseudo-terminals and a real hub.

Each test plays the Arduino on the master side of a pty; the hub reads the
slave side through a symlink, as it would a /dev/serial/by-id/ path, and the
readings are checked where a user sees them: on a real WebSocket client.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import time

import pytest
import serial

from conftest import until
from smartanom.builtin.serial_arduino import runner
from smartanom.builtin.serial_arduino.config import SerialArduinoOptions
from smartanom.builtin.serial_arduino.parser import checksum
from smartanom.builtin.serial_arduino.port import PortUnavailable, open_blocking

LABEL = "arduino"
PLUGIN_LOGGER = "smartanom.plugins.serial_arduino"

HUB = """
devices:
  - id: 1
    name: Tank
    offline_after: 60
    sensors:
      - {{id: 1, type: water_temperature}}
      - {{id: 2, type: ph}}
      - {{id: 3, type: ec}}
      - {{id: 4, type: tds}}
plugins:
  - platform: serial_arduino
    name: arduino
    device: 1
    port: {port}
    baudrate: 115200
    max_line_length: 64
    reconnect_min: 0.05
    reconnect_max: 0.2
    sensors:
      water_temperature: 1
      pH: 2
      ec: 3
      TDS: 4
"""


class FakeArduino:
    """A pty whose master side the test writes to, like an Arduino printing."""

    def __init__(self):
        self.master, slave = os.openpty()
        self.slave_path = os.ttyname(slave)
        os.close(slave)  # the hub opens it by path, like a real device
        os.set_blocking(self.master, False)

    async def send(self, data: bytes) -> None:
        # Non-blocking writes: the hub reads on this same event loop.
        view = memoryview(data)
        while view:
            try:
                view = view[os.write(self.master, view):]
            except BlockingIOError:
                await asyncio.sleep(0.005)

    async def print(self, *lines: str) -> None:
        await self.send("".join(f"{line}\r\n" for line in lines).encode())

    def unplug(self) -> None:
        if self.master is not None:
            os.close(self.master)
            self.master = None


@pytest.fixture
def arduinos():
    made: list[FakeArduino] = []

    def make() -> FakeArduino:
        made.append(FakeArduino())
        return made[-1]

    yield make
    for arduino in made:
        arduino.unplug()


@pytest.fixture
def by_id(tmp_path):
    """Where the test's 'udev' puts the stable link: link_to(arduino) / remove()."""
    link = tmp_path / "serial" / "by-id" / "usb-Arduino__www.arduino.cc__0043_7503330323-if00"
    link.parent.mkdir(parents=True)

    class ById:
        path = str(link)

        def link_to(self, arduino: FakeArduino) -> None:
            self.remove()
            link.symlink_to(arduino.slave_path)

        def remove(self) -> None:
            if link.is_symlink():
                link.unlink()

    return ById()


@pytest.fixture(autouse=True)
def plugin_logs(caplog):
    caplog.set_level(logging.DEBUG, logger="smartanom")
    return caplog


def messages(caplog, text: str, level: int = logging.DEBUG) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == PLUGIN_LOGGER and r.levelno >= level and text in r.getMessage()]


async def opened(caplog, count: int = 1) -> None:
    await until(lambda: len(messages(caplog, "opened serial port")) >= count, what=f"open #{count} of the port")


async def readings(client, n: int, timeout: float = 10.0) -> list[tuple[int, float]]:
    got = []
    for _ in range(n):
        update = await client.receive(type="sensor_data_update", timeout=timeout)
        got.append((update["sensor_id"], update["value"]))
    return got


def with_checksum(payload: str) -> str:
    return f"{payload}*{checksum(payload.encode()):02X}"


@pytest.mark.gen_test(timeout=30)
async def test_every_line_form_reaches_a_websocket_client(hub_factory, ws_client, arduinos, by_id, caplog):
    arduino = arduinos()
    by_id.link_to(arduino)
    hub = await hub_factory(HUB.format(port=by_id.path))
    client = await ws_client(hub, "/ws/sensor-data/")
    await opened(caplog)

    # The tail of a line printed before the port was opened, a reset banner, then samples.
    await arduino.send(b"0.5,ec=9.99\r\n")
    await arduino.print(
        "# SmarTanom sensor node v1.2 ready",
        "ph=6.82,ec=1.41 water_temperature=21.5",
        "pH          : 6.80",
        "  EC  : 1.39 mS/cm",
        '{"ph": 6.8, "tds": 702, "Water_Temperature": 21.4}',
        with_checksum("ph=6.75,tds=699"),
    )
    assert await readings(client, 10) == [
        (2, 6.82), (3, 1.41), (1, 21.5),
        (2, 6.8),
        (3, 1.39),
        (2, 6.8), (4, 702.0), (1, 21.4),
        (2, 6.75), (4, 699.0),
    ]
    assert await client.nothing_within(0.2) == []
    assert messages(caplog, "ignored serial input") == []  # the partial line and the banner are not errors
    assert hub.status.of(1).value == "active"
    stored = await until_stored(hub, 10)
    assert (3, 9.99) not in stored


async def until_stored(hub, n: int) -> list[tuple[int, float]]:
    def rows():
        with sqlite3.connect(hub.storage.path) as db:
            return [tuple(r) for r in db.execute("SELECT sensor_id, value FROM readings ORDER BY rowid")]

    loop = asyncio.get_running_loop()
    await until(lambda: len(rows()) >= n, what=f"{n} stored readings")
    return await loop.run_in_executor(None, rows)


@pytest.mark.gen_test(timeout=30)
async def test_bad_lines_are_counted_and_logged_once_and_never_stop_the_reader(hub_factory, ws_client, arduinos, by_id, caplog):
    arduino = arduinos()
    by_id.link_to(arduino)
    hub = await hub_factory(HUB.format(port=by_id.path))
    client = await ws_client(hub, "/ws/sensor/2/")
    await opened(caplog)
    await arduino.print("first line after open is dropped")

    await arduino.print(*["SmarTanom starting..."] * 200)
    await arduino.send(b"\xff\xfe\x00ph=1\r\n")           # invalid UTF-8, as after a baud mismatch
    await arduino.send(b"ph=" + b"7" * 100000 + b"\r\n")   # far over max_line_length
    await arduino.print("humidity=71", "ph=abc", with_checksum("ph=6.1").replace("6.1", "6.2"))
    await arduino.print("\x1b[2J\x1b[31mred alert", "ph=6.5")

    assert await readings(client, 1) == [(2, 6.5)]
    warnings = messages(caplog, "ignored serial input", logging.WARNING)
    # Rate-limited per kind: the first of each kind at once, one line for 200 banner lines.
    kinds = [w.split("(", 1)[1].split(",")[0].split(")")[0] for w in warnings]
    assert sorted(kinds) == sorted(set(kinds)) and {"not a reading", "bad checksum", "unparsable value", "line too long"} <= set(kinds), warnings
    assert "not a reading" in warnings[0] and "b'SmarTanom starting...\\r'" in warnings[0]
    assert hub.instances[LABEL].restarts == 0

    await arduino.print("ph=6.6")
    assert await readings(client, 1) == [(2, 6.6)]
    # 200 banner lines, invalid UTF-8, an oversized line, an unmapped key, a bad value,
    # a bad checksum and an escape sequence: counted where /api/plugins shows them.
    assert hub.instances[LABEL].stats == {"bad_lines": 206, "readings": 2}


@pytest.mark.gen_test(timeout=30)
async def test_each_bad_line_names_its_problem_and_shows_the_raw_line_safely(hub_factory, ws_client, arduinos, by_id, caplog, monkeypatch):
    monkeypatch.setattr(runner, "BAD_LINE_LOG_EVERY", 0.0)  # log every bad line, to see each one
    arduino = arduinos()
    by_id.link_to(arduino)
    hub = await hub_factory(HUB.format(port=by_id.path))
    client = await ws_client(hub, "/ws/sensor/2/")
    await opened(caplog)
    await arduino.print("dropped")
    await arduino.send(b"\xff\xfeph=1\r\n")
    await arduino.send(b"ph=" + b"7" * 5000 + b"\r\n")
    await arduino.print("humidity=71,ph=6.3", "ph=abc", with_checksum("ph=6.1").replace("6.1", "6.2"), "\x1b[2Jred alert", "ph=6.5")
    assert await readings(client, 2) == [(2, 6.3), (2, 6.5)]

    warnings = messages(caplog, "ignored serial input", logging.WARNING)
    expected = [
        ("invalid UTF-8", "b'\\xff\\xfeph=1\\r'"),
        ("line too long", "b'ph=777"),
        ("unknown key", "'humidity'"),
        ("unparsable value", "'abc'"),
        ("bad checksum", "ph=6.2*"),
        ("not a reading", "b'\\x1b[2Jred alert\\r'"),
    ]
    assert len(warnings) == len(expected), warnings
    for message, (kind, raw) in zip(warnings, expected):
        assert kind in message and raw in message, message
    assert all("\x1b" not in m and len(m) < 400 for m in warnings)
    assert "unknown key: 1" in warnings[-1] and "line too long: 1" in warnings[-1]  # running totals


@pytest.mark.gen_test(timeout=60)
async def test_unplug_marks_inactive_and_a_new_port_behind_the_link_is_followed(hub_factory, ws_client, arduinos, by_id, caplog):
    first = arduinos()
    by_id.link_to(first)
    hub = await hub_factory(HUB.format(port=by_id.path))
    readings_client = await ws_client(hub, "/ws/sensor/2/")
    device_client = await ws_client(hub, "/ws/device/1/")
    await opened(caplog)
    await first.print("dropped", "ph=6.1")
    assert await readings(readings_client, 1) == [(2, 6.1)]
    assert (await device_client.receive(type="device_status"))["status"] == "active"

    second = arduinos()  # the next ttyUSBn the kernel will hand out
    # udev removes the link with the device. Link first: pty numbers are machine-wide, and
    # another process could get the freed one while the link still pointed at it.
    by_id.remove()
    first.unplug()
    status = await device_client.receive(type="device_status")
    assert status["status"] == "inactive"
    assert len(messages(caplog, "lost serial port", logging.WARNING)) == 1

    # The missing port is said once; its path is then watched for, not opened again and again.
    await until(lambda: messages(caplog, "does not exist", logging.ERROR), what="the missing-port error")
    assert len(messages(caplog, "does not exist", logging.ERROR)) == 1

    by_id.link_to(second)
    await opened(caplog, 2)
    assert f"-> {second.slave_path}" in messages(caplog, "opened serial port")[-1]
    await second.print("dropped", "pH : 6.4")
    assert await readings(readings_client, 1) == [(2, 6.4)]
    assert (await device_client.receive(type="device_status"))["status"] == "active"
    assert hub.instances[LABEL].restarts == 0
    assert not [r for r in caplog.records if r.name == "asyncio"]


@pytest.mark.gen_test(timeout=60)
async def test_port_missing_at_startup_is_reported_with_the_fix_and_used_once_it_appears(hub_factory, ws_client, arduinos, by_id, caplog):
    hub = await hub_factory(HUB.format(port=by_id.path))
    client = await ws_client(hub, "/ws/sensor-data/")
    await until(lambda: messages(caplog, "does not exist", logging.ERROR), what="the missing-port error")
    error = messages(caplog, "does not exist", logging.ERROR)[0]
    assert by_id.path in error and "ls -l /dev/serial/by-id/" in error
    # Watched for, not retried on the backoff timer: the message must not promise a timer.
    assert error.endswith("Opening it as soon as it appears."), error
    assert await client.request({"type": "ping"}) == {"type": "pong"}  # the hub carries on

    arduino = arduinos()
    by_id.link_to(arduino)
    await opened(caplog)
    await arduino.print("dropped", '{"ec": 1.5}')
    assert await readings(client, 1) == [(3, 1.5)]
    assert len(messages(caplog, "does not exist", logging.ERROR)) == 1


@pytest.mark.gen_test(timeout=60)
async def test_a_dangling_link_is_retried_too(hub_factory, ws_client, arduinos, by_id, tmp_path, caplog):
    # As after an unplug that udev has not cleaned up yet. (Not a closed pty's path: pty
    # numbers are machine-wide, and another process may be using that one by now.)
    os.symlink(tmp_path / "ttyUSB7", by_id.path)
    hub = await hub_factory(HUB.format(port=by_id.path))
    client = await ws_client(hub, "/ws/sensor/4/")
    await until(lambda: messages(caplog, "does not exist", logging.ERROR), what="the open error")
    assert f"(-> {tmp_path / 'ttyUSB7'}) does not exist" in messages(caplog, "does not exist")[0]
    arduino = arduinos()
    by_id.link_to(arduino)
    await opened(caplog)
    await arduino.print("dropped", "tds=650")
    assert await readings(client, 1) == [(4, 650.0)]


@pytest.mark.gen_test(timeout=60)
async def test_open_and_close_happen_off_the_event_loop(hub_factory, ws_client, arduinos, by_id, caplog, monkeypatch):
    # A slow USB adapter cannot exist here: make pyserial's real open and close slow.
    calls = {"open": 0, "close": 0}
    real_open, real_close = serial.Serial.open, serial.Serial.close

    def slow_open(self):
        calls["open"] += 1
        time.sleep(1.5)
        real_open(self)

    def slow_close(self):
        if self.is_open:
            calls["close"] += 1
            time.sleep(1.5)
        real_close(self)

    monkeypatch.setattr(serial.Serial, "open", slow_open)
    monkeypatch.setattr(serial.Serial, "close", slow_close)

    loop = asyncio.get_running_loop()
    worst = 0.0

    async def measure_lag():
        nonlocal worst
        while True:
            before = loop.time()
            await asyncio.sleep(0.01)
            worst = max(worst, loop.time() - before - 0.01)

    ticker = loop.create_task(measure_lag())
    try:
        arduino = arduinos()
        by_id.link_to(arduino)
        hub = await hub_factory(HUB.format(port=by_id.path))
        client = await ws_client(hub, "/ws/sensor/1/")
        await opened(caplog)
        await arduino.print("dropped", "water_temperature=22.5")
        assert await readings(client, 1) == [(1, 22.5)]
        arduino.unplug()  # close after a read error
        await until(lambda: calls["close"] >= 1 and messages(caplog, "lost serial port"), what="the close after unplug")
        await hub.stop()  # and close on shutdown, possibly while a reopen is in progress
    finally:
        ticker.cancel()
    assert calls["open"] >= 1 and calls["close"] >= 1
    assert worst < 0.75, f"the event loop stalled for {worst:.2f} s"


def test_permission_denied_names_the_dialout_fix(arduinos):
    arduino = arduinos()
    os.chmod(arduino.slave_path, 0o600)  # like a ttyUSB owned by root:dialout for a user outside dialout
    options = SerialArduinoOptions.model_validate({"platform": "serial_arduino", "device": 1, "port": arduino.slave_path, "sensors": {"ph": 2}})
    # Root opens anything, so a forked child drops to 'nobody' to meet the permission check for real.
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        try:
            if os.geteuid() == 0:
                os.setgroups([])
                os.setgid(65534)
                os.setuid(65534)
            else:
                os.chmod(arduino.slave_path, 0)
            try:
                open_blocking(options)
                os.write(write_end, b"opened")
            except PortUnavailable as exc:
                os.write(write_end, str(exc).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    os.waitpid(pid, 0)
    with os.fdopen(read_end, "rb") as pipe:
        message = pipe.read().decode()
    assert message.startswith(f"no permission to open serial port {arduino.slave_path}."), message
    assert "sudo usermod -aG dialout $USER" in message


def test_a_port_in_use_says_so(arduinos, by_id):
    arduino = arduinos()
    by_id.link_to(arduino)
    options = SerialArduinoOptions.model_validate({"platform": "serial_arduino", "device": 1, "port": by_id.path, "sensors": {"ph": 2}})
    port, real = open_blocking(options)
    try:
        assert real == arduino.slave_path
        with pytest.raises(PortUnavailable, match="in use by another program"):
            open_blocking(options)
    finally:
        port.close_now()


def test_a_path_that_is_not_a_serial_port_is_reported(tmp_path):
    not_a_tty = tmp_path / "ttyUSB0"
    not_a_tty.write_text("")
    options = SerialArduinoOptions.model_validate({"platform": "serial_arduino", "device": 1, "port": str(not_a_tty), "sensors": {"ph": 2}})
    with pytest.raises(PortUnavailable) as info:
        open_blocking(options)
    assert str(info.value).startswith(f"cannot open serial port {not_a_tty}: ")
    assert "Inappropriate ioctl" in str(info.value)


# -- replug, problems shown, one reader per port ----------------------------------------------------

DEFAULT_BACKOFF_HUB = HUB.replace("    reconnect_min: 0.05\n    reconnect_max: 0.2\n", "")


async def api(hub, path: str) -> dict:
    import json

    import tornado.httpclient
    response = await tornado.httpclient.AsyncHTTPClient().fetch(f"{hub.url}{path}", raise_error=False)
    return json.loads(response.body)


@pytest.mark.gen_test(timeout=60)
async def test_a_replugged_arduino_is_read_again_within_two_seconds_with_default_settings(hub_factory, ws_client, arduinos, by_id, caplog):
    first = arduinos()
    by_id.link_to(first)
    hub = await hub_factory(DEFAULT_BACKOFF_HUB.format(port=by_id.path))
    client = await ws_client(hub, "/ws/sensor/2/")
    await opened(caplog)
    await first.print("dropped", "ph=6.1")
    assert await readings(client, 1) == [(2, 6.1)]

    by_id.remove()
    first.unplug()
    await until(lambda: messages(caplog, "does not exist", logging.ERROR), what="the missing-port error")
    # While it is missing: the problem and since when, where monitoring looks.
    instance = (await api(hub, "/api/plugins"))["instances"][0]
    assert "does not exist" in instance["stats"]["problem"] and instance["stats"]["problem_since"].endswith("Z"), instance
    health = await api(hub, "/api/health")
    assert health["status"] == "degraded" and any("does not exist" in p and "since" in p for p in health["problems"]), health
    # Unplugged for a while: with doubling backoff (1, 2, 4, 8 s) this used to cost up to 30 s.
    await asyncio.sleep(8)

    second = arduinos()
    by_id.link_to(second)
    replugged = time.monotonic()
    await opened(caplog, 2)
    assert time.monotonic() - replugged < 2.0
    await second.print("dropped", "ph=6.4")
    assert await readings(client, 1) == [(2, 6.4)]
    assert "problem" not in (await api(hub, "/api/plugins"))["instances"][0]["stats"]
    assert (await api(hub, "/api/health"))["status"] == "ok"


@pytest.mark.gen_test(timeout=30)
async def test_the_port_is_held_exclusively_by_the_kernel(hub_factory, arduinos, by_id, caplog):
    import fcntl
    import struct
    arduino = arduinos()
    by_id.link_to(arduino)
    await hub_factory(HUB.format(port=by_id.path))
    await opened(caplog)
    # The tests run as root, which TIOCEXCL does not stop; TIOCGEXCL asks the kernel whether it is set.
    TIOCGEXCL = 0x80045440
    fd = os.open(arduino.slave_path, os.O_RDONLY | os.O_NOCTTY | os.O_NONBLOCK)
    try:
        flag = struct.unpack("i", fcntl.ioctl(fd, TIOCGEXCL, b"\0\0\0\0"))[0]
    finally:
        os.close(fd)
    assert flag == 1
    if os.geteuid() != 0:
        with pytest.raises(PortUnavailable, match="in use"):
            open_blocking(SerialArduinoOptions.model_validate({"platform": "serial_arduino", "device": 1, "port": by_id.path, "sensors": {"ph": 2}}))


def test_two_entries_on_one_port_are_a_config_error(tmp_path, arduinos, by_id):
    from smartanom.config import load_config
    from smartanom.errors import ConfigError
    from smartanom.testing import make_plugin_host
    arduino = arduinos()
    by_id.link_to(arduino)
    second_entry = f"""  - platform: serial_arduino
    device: 1
    port: {arduino.slave_path}
    sensors: {{ec: 3}}
"""
    path = tmp_path / "hub.yaml"
    path.write_text(HUB.format(port=by_id.path) + second_entry)
    with pytest.raises(ConfigError) as caught:
        load_config(path, make_plugin_host().collect_platforms())
    (issue,) = caught.value.issues
    port_line = path.read_text().splitlines().index(f"    port: {arduino.slave_path}") + 1
    assert issue.path == "plugins[1].port" and issue.line == port_line, issue
    assert f"serial port {arduino.slave_path} is already used by plugins[0]" in issue.message
