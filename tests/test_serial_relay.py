"""serial_relay outputs on a real pty: the test plays the relay sketch on the master side."""

import asyncio
import os

import pytest

from smartanom.builtin.serial_arduino import relay as relay_module
from control_harness import until

HUB = """
devices:
  - id: 1
    name: Tank
    offline_after: 60
    sensors:
      - {{id: 1, type: ph}}
control:
  period: 0.2
outputs:
  - id: pump
    name: Nutrient pump
    type: serial_relay
    device: 1
    relay: 2
    confirm_timeout: 0.5
plugins:
  - platform: serial_arduino
    name: arduino
    device: 1
    port: {port}
    reconnect_min: 0.05
    reconnect_max: 0.2
    sensors: {{ph: 1}}
"""


class RelaySketch:
    """The sketch's side: reads `!` commands from the pty, answers `!ok ...`, prints readings too."""

    def __init__(self):
        self.master, slave = os.openpty()
        self.path = os.ttyname(slave)
        os.close(slave)
        os.set_blocking(self.master, False)
        self.commands: list[str] = []
        self.relays: dict[int, bool] = {}
        self.mute = False
        self.task = asyncio.ensure_future(self._run())

    async def _run(self):
        buffer = b""
        while True:
            try:
                buffer += os.read(self.master, 1024)
            except (BlockingIOError, OSError):
                await asyncio.sleep(0.01)
                continue
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                text = line.decode().strip()
                self.commands.append(text)
                parts = text.split()
                if parts[:1] == ["!relay"] and not self.mute:
                    self.relays[int(parts[1])] = parts[2] == "on"
                    os.write(self.master, f"ph=6.10\r\n!ok relay {parts[1]} {parts[2]}\r\n".encode())

    async def close(self):
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)
        os.close(self.master)


@pytest.fixture
def sketch(io_loop):
    sketches = []

    def make():
        sketches.append(RelaySketch())
        return sketches[-1]

    yield make
    for s in sketches:
        io_loop.run_sync(s.close, timeout=10)


@pytest.mark.gen_test(timeout=30)
async def test_relay_commands_are_acknowledged_and_kept_alive(hub_factory, sketch, monkeypatch):
    monkeypatch.setattr(relay_module, "KEEPALIVE", 0.1)
    arduino = sketch()
    hub = await hub_factory(HUB.format(port=arduino.path))
    pump = hub.control.outputs.get("pump")
    await until(lambda: pump.available and pump.on is False)
    assert arduino.relays == {2: False}
    await hub.control.override("pump", True, 60, "test")
    assert pump.on is True and arduino.relays == {2: True}
    await until(lambda: "!ping" in arduino.commands)  # the sketch's watchdog is fed
    assert hub.status.of(1).value == "active"  # readings on the same line still count
    await hub.stop()
    assert arduino.relays == {2: False}


@pytest.mark.gen_test(timeout=30)
async def test_no_acknowledgement_or_no_port_leaves_the_output_unavailable(hub_factory, sketch):
    arduino = sketch()
    hub = await hub_factory(HUB.format(port=arduino.path))
    pump = hub.control.outputs.get("pump")
    await until(lambda: pump.available and pump.on is False)
    arduino.mute = True
    await hub.control.override("pump", True, 60, "test")
    assert pump.available is False and "no acknowledgement of relay 2 within 0.5 s" in pump.error
    arduino.mute = False
    await until(lambda: pump.available and pump.on is True)


@pytest.mark.gen_test(timeout=30)
async def test_a_missing_port_makes_the_output_unavailable(hub_factory, tmp_path):
    hub = await hub_factory(HUB.format(port=tmp_path / "ttyUSB9"))
    pump = hub.control.outputs.get("pump")
    # Once the instance runs (and keeps failing to open the port), each retry says why.
    await until(lambda: pump.error is not None and "the serial port is not open" in pump.error)
    assert pump.available is False
