"""The modbus platform in a running hub, polling a real pymodbus server.

TCP servers listen on a free loopback port; RTU servers talk over a socat pty
pair, so the plugin opens a real serial device. Nothing is mocked.
"""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path

import pytest
import tornado.httpclient
from pymodbus.client import AsyncModbusTcpClient as PymodbusClient

from smartanom.events import DeviceStatus, SensorReading
from conftest import until
from modbus_server import RtuProbeServer, TcpProbeServer

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def servers(io_loop):
    """Probe servers started in a test are stopped after it."""
    started = []

    async def start(server):
        started.append(server)
        return await server.start()

    yield start
    for server in reversed(started):
        io_loop.run_sync(server.stop, timeout=10)


def collect(hub) -> list[SensorReading]:
    readings: list[SensorReading] = []
    hub.bus.subscribe(SensorReading, readings.append)
    return readings


async def plugin_stats(hub) -> dict:
    """The modbus instance's counters, as GET /api/plugins shows them."""
    response = await tornado.httpclient.AsyncHTTPClient().fetch(f"{hub.url}/api/plugins")
    (instance,) = [i for i in json.loads(response.body)["instances"] if i["platform"] == "modbus"]
    return instance["stats"]


def values_of(readings, sensor_id):
    return [r.value for r in readings if r.sensor.id == sensor_id]


# -- decoding through the wire ---------------------------------------------------------------

VALUES = {
    "int16": -1234, "uint16": 54321, "int32": -123456789, "uint32": 3000000000,
    "float32": -12.25, "int64": -(2**40) - 7, "uint64": 2**53 + 2, "float64": 6.5e10,
}


def device_registers(value, data_type, word_order, byte_order) -> list[int]:
    # Encoded by pymodbus (an implementation independent of ours), bytes swapped by hand.
    registers = PymodbusClient.convert_to_registers(value, getattr(PymodbusClient.DATATYPE, data_type.upper()), word_order)
    if byte_order == "little":
        registers = [((r & 0xFF) << 8) | (r >> 8) for r in registers]
    return registers


@pytest.mark.gen_test(timeout=30)
async def test_every_data_type_and_order_over_tcp(hub_factory, servers):
    cases, holding, inputs, sensors_yaml, devices_yaml = [], {}, {}, [], []
    address = 0
    for data_type, value in VALUES.items():
        wide = data_type not in ("int16", "uint16")
        for word_order in (("big", "little") if wide else (None,)):
            for byte_order in ("big", "little"):
                sensor_id = len(cases) + 1
                table = "holding" if sensor_id % 2 else "input"
                registers = device_registers(value, data_type, word_order or "big", byte_order)
                (holding if table == "holding" else inputs).update({address + i: r for i, r in enumerate(registers)})
                order = f", word_order: {word_order}" if word_order else ""
                sensors_yaml.append(
                    f"      - {{sensor: {sensor_id}, slave: 7, register_type: {table}, address: {address},"
                    f" data_type: {data_type}{order}, byte_order: {byte_order}, interval: 10}}"
                )
                devices_yaml.append(f"      - {{id: {sensor_id}, type: temperature}}")
                cases.append((sensor_id, data_type, word_order, byte_order, value))
                address += 4
    assert len(cases) == 2 * 2 + 6 * 4
    server = await servers(TcpProbeServer({7: {"holding": holding, "input": inputs}}))
    hub = await hub_factory(
        "devices:\n  - id: 1\n    name: Wire\n    offline_after: 60\n    sensors:\n" + "\n".join(devices_yaml)
        + f"\nplugins:\n  - platform: modbus\n    device: 1\n    transport: tcp\n    host: 127.0.0.1\n"
        f"    port: {server.port}\n    timeout: 0.2\n    gap: 0\n    sensors:\n" + "\n".join(sensors_yaml) + "\n"
    )
    readings = collect(hub)
    await until(lambda: len({r.sensor.id for r in readings}) == len(cases), what="a reading of every sensor")
    for sensor_id, data_type, word_order, byte_order, value in cases:
        assert values_of(readings, sensor_id)[0] == float(value), (data_type, word_order, byte_order)


# -- the shipped example on an RS-485 bus (RTU over a pty) ----------------------------------------

@pytest.mark.gen_test(timeout=30)
async def test_shipped_example_on_rtu_reaches_websocket_clients(hub_factory, ws_client, servers, tmp_path):
    # What the example's two probes would send: pH 6.50, water at -4.5 °C, EC 1413 µS/cm as a CDAB float32.
    server = await servers(RtuProbeServer({
        1: {"holding": {0: 650, 1: 0x10000 - 45}},
        2: {"input": dict(enumerate(device_registers(1413.0, "float32", "little", "big")))},
    }, tmp_path))
    example = (ROOT / "config/modbus-probe.yaml").read_text()
    assert "/dev/ttyUSB0" in example and "data/smartanom.db" in example
    example = example.replace("/dev/ttyUSB0", server.client_port).replace("data/smartanom.db", str(tmp_path / "hub.db"))
    hub = await hub_factory(example)
    client = await ws_client(hub, "/ws/sensor-data/")

    updates = {}
    while len(updates) < 3:
        message = await client.receive(type="sensor_data_update", timeout=10)
        updates.setdefault(message["sensor_id"], message)
    assert {s: (m["value"], m["unit"]) for s, m in updates.items()} == {
        1: (6.5, "ph"), 2: (-4.5, "celsius"), 3: (1.413, "mS/cm"),
    }
    assert updates[3]["device_name"] == "Nutrient Tank"
    assert hub.status.of(1) is DeviceStatus.ACTIVE

    # Two slaves on one half-duplex bus: one request at a time, at least `gap` (0.05 s) apart.
    times = [t for t, _slave, _fc in server.requests]
    assert {slave for _t, slave, _fc in server.requests} == {1, 2}
    assert all(later - earlier >= 0.045 for earlier, later in zip(times, times[1:]))


# -- failures ---------------------------------------------------------------------------------------

def one_sensor_hub(port_yaml: str, *, extra: str = "", address: int = 0) -> str:
    return f"""
devices:
  - id: 1
    name: Tank
    offline_after: 20
    sensors:
      - {{id: 1, type: ph}}
plugins:
  - platform: modbus
    device: 1
{port_yaml}
    timeout: 0.1
    retries: 1
    gap: 0.01
    reconnect_delay: 0.1
    reconnect_delay_max: 0.4
{extra}
    sensors:
      - {{sensor: 1, slave: 3, address: {address}, data_type: uint16, scale: 0.01, precision: 2, interval: 0.3}}
"""


@pytest.mark.gen_test(timeout=30)
async def test_slave_that_stops_answering_marks_the_device_inactive_until_it_answers(hub_factory, ws_client, servers):
    server = await servers(TcpProbeServer({3: {"holding": {0: 612}}}))
    hub = await hub_factory(one_sensor_hub(f"    transport: tcp\n    host: 127.0.0.1\n    port: {server.port}"))
    device = await ws_client(hub, "/ws/device/1/")
    readings = collect(hub)
    assert (await device.receive(type="sensor_data_update"))["value"] == 6.12
    await until(lambda: hub.status.of(1) is DeviceStatus.ACTIVE, what="device active")
    healthy = await plugin_stats(hub)
    assert healthy["reads"] >= 1 and (healthy["failed_reads"], healthy["reconnects"], healthy["last_error"]) == (0, 0, None)

    server.muted.add(3)
    # Inactive long before offline_after (20 s): the plugin reports the failed read.
    status = await device.receive(type="device_status", timeout=5)
    assert status["status"] == "inactive"
    count = len(values_of(readings, 1))
    silent = await plugin_stats(hub)
    assert silent["failed_reads"] >= 2  # retries: 1, so two timeouts made it inactive
    polls = len(server.requests)
    await until(lambda: len(server.requests) >= polls + 4, what="polling to go on while the slave is silent")
    assert len(values_of(readings, 1)) == count, "a failed read must never become a reading"
    later = await plugin_stats(hub)
    assert later["failed_reads"] >= silent["failed_reads"] + 3, (silent, later)  # each timed-out request, retries included
    assert later["reads"] == silent["reads"] and "no answer within the timeout" in later["last_error"]

    server.muted.discard(3)
    status = await device.receive(type="device_status", timeout=5)
    assert status["status"] == "active"
    await until(lambda: len(values_of(readings, 1)) > count, what="readings again")
    assert set(values_of(readings, 1)) == {6.12}
    assert (await plugin_stats(hub))["reads"] > later["reads"]


@pytest.mark.gen_test(timeout=30)
async def test_crc_errors_on_rtu_count_as_failed_reads(hub_factory, servers, tmp_path):
    server = await servers(RtuProbeServer({3: {"holding": {0: 590}}}, tmp_path))
    hub = await hub_factory(one_sensor_hub(f"    transport: rtu\n    port: {server.client_port}"))
    readings = collect(hub)
    await until(lambda: hub.status.of(1) is DeviceStatus.ACTIVE, what="device active")

    assert (await plugin_stats(hub))["failed_reads"] == 0
    server.garbled.add(3)  # answers arrive, but with a broken CRC
    await until(lambda: hub.status.of(1) is DeviceStatus.INACTIVE, timeout=5, what="device inactive")
    count, polls = len(readings), len(server.requests)
    before = await plugin_stats(hub)
    await until(lambda: len(server.requests) >= polls + 4, what="polling to go on")
    assert len(readings) == count, "a garbled answer must never become a reading"
    after = await plugin_stats(hub)
    assert after["failed_reads"] >= before["failed_reads"] + 3 and after["reads"] == before["reads"], (before, after)

    server.garbled.discard(3)
    await until(lambda: len(readings) > count, what="a good read")
    assert hub.status.of(1) is DeviceStatus.ACTIVE
    assert set(values_of(readings, 1)) == {5.9}


@pytest.mark.gen_test(timeout=30)
async def test_exception_response_is_reported_and_never_a_value(hub_factory, servers, caplog):
    server = await servers(TcpProbeServer({3: {"holding": {0: 590}}}))
    caplog.set_level(logging.WARNING, logger="smartanom.plugins.modbus")
    # Address 500 is past what the server holds: it answers "illegal data address".
    hub = await hub_factory(one_sensor_hub(f"    transport: tcp\n    host: 127.0.0.1\n    port: {server.port}", address=500))
    readings = collect(hub)
    await until(lambda: "illegal data address" in caplog.text, what="the failure to be logged")
    await until(lambda: len(server.requests) >= 6, what="polling to go on")
    assert readings == [] and hub.status.of(1) is DeviceStatus.INACTIVE
    # Logged once per failure episode, not once per poll; counted every time.
    assert caplog.text.count("illegal data address") == 1
    counted = await plugin_stats(hub)
    assert counted["reads"] == 0 and counted["failed_reads"] >= 5, counted
    assert counted["last_error"] == "sensor 1 (slave 3): exception response 2: illegal data address (wrong address?)"


@pytest.mark.gen_test(timeout=40)
async def test_server_that_disappears_and_comes_back(hub_factory, servers, caplog):
    caplog.set_level(logging.INFO, logger="smartanom.plugins.modbus")
    server = await servers(TcpProbeServer({3: {"holding": {0: 640}}}))
    hub = await hub_factory(one_sensor_hub(f"    transport: tcp\n    host: 127.0.0.1\n    port: {server.port}"))
    readings = collect(hub)
    await until(lambda: hub.status.of(1) is DeviceStatus.ACTIVE, what="device active")

    assert (await plugin_stats(hub))["reconnects"] == 0
    await server.stop()
    await until(lambda: hub.status.of(1) is DeviceStatus.INACTIVE, timeout=5, what="device inactive after the server left")
    count = len(readings)

    async def reconnection_failed():
        return "connect" in ((await plugin_stats(hub))["last_error"] or "")

    await until(reconnection_failed, what="a failed reconnection attempt")  # the loop stays free meanwhile
    assert len(readings) == count
    down = await plugin_stats(hub)
    assert down["reconnects"] == 0 and "connect" in down["last_error"], down
    assert "cannot connect" in down["problem"] and down["problem_since"].endswith("Z"), down

    await server.start()  # same port, like a gateway that rebooted
    await until(lambda: len(readings) > count, timeout=10, what="readings after the server came back")
    assert hub.status.of(1) is DeviceStatus.ACTIVE
    assert set(values_of(readings, 1)) == {6.4}
    back = await plugin_stats(hub)
    assert back["reconnects"] == 1 and back["reads"] > down["reads"], back
    assert "problem" not in back
    assert "is down" in caplog.text and "reconnected" in caplog.text
    assert "cannot keep up" not in caplog.text  # an outage is not an overloaded bus


@pytest.mark.gen_test(timeout=30)
async def test_independent_buses_do_not_wait_for_each_other(hub_factory, servers):
    slow = await servers(TcpProbeServer({1: {"holding": {0: 100}}}))
    fast = await servers(TcpProbeServer({1: {"holding": {0: 200}}}))
    slow.muted.add(1)
    hub = await hub_factory(f"""
devices:
  - id: 1
    name: Slow bus
    sensors: [{{id: 1, type: ph}}]
  - id: 2
    name: Fast bus
    sensors: [{{id: 2, type: ph}}]
plugins:
  - platform: modbus
    device: 1
    transport: tcp
    host: 127.0.0.1
    port: {slow.port}
    timeout: 1.0
    retries: 2
    sensors: [{{sensor: 1, slave: 1, address: 0, interval: 5}}]
  - platform: modbus
    device: 2
    transport: tcp
    host: 127.0.0.1
    port: {fast.port}
    timeout: 0.1
    sensors: [{{sensor: 2, slave: 1, address: 0, interval: 0.2}}]
""")
    readings = collect(hub)
    # The slow bus spends 3 s on its first read (three 1 s timeouts); meanwhile the fast bus keeps going.
    await until(lambda: len(values_of(readings, 2)) >= 3, timeout=10, what="fast-bus readings")
    assert values_of(readings, 1) == []
    assert len(slow.requests) <= 3
