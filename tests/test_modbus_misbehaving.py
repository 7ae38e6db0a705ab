"""The modbus plugin against peers that misbehave like field devices do (tests/modbus_misbehaving.py).

What must hold: a late, echoed, noisy, mislabelled or malformed answer is never
published as a value; it is counted as a failed read, and the hub goes on.
"""

from __future__ import annotations

import logging

import pytest

from smartanom.events import DeviceStatus, DeviceStatusChanged
from modbus_misbehaving import LateRtuProbe, MalformedTcpDevice
from modbus_server import TcpProbeServer
from test_modbus_runner import collect, plugin_stats, servers, until  # noqa: F401 - servers is a fixture

PH, TEMPERATURE = 650, 235  # what the probe holds: pH 6.50 at address 0, 23.5 °C at address 1


def probe_hub(port_yaml: str, *, timeout: float = 0.2, interval: float = 0.5, extra: str = "", slave: int = 1) -> str:
    return f"""
devices:
  - id: 1
    name: Tank
    offline_after: 30
    sensors:
      - {{id: 1, type: ph}}
      - {{id: 2, type: temperature}}
plugins:
  - platform: modbus
    device: 1
{port_yaml}
    timeout: {timeout}
    retries: 0
    gap: 0.01
    reconnect_delay: 0.2
    reconnect_delay_max: 1
{extra}
    sensors:
      - {{sensor: 1, slave: {slave}, address: 0, scale: 0.01, precision: 2, interval: {interval}}}
      - {{sensor: 2, slave: {slave}, address: 1, scale: 0.1, precision: 1, interval: {interval}}}
"""


def wrong(readings) -> list:
    return [(r.sensor.id, r.value) for r in readings if (r.sensor.id, r.value) not in ((1, 6.5), (2, 23.5))]


@pytest.mark.gen_test(timeout=60)
async def test_late_rtu_answers_are_never_taken_for_the_next_request(hub_factory, servers, tmp_path):
    # Every third request is answered 20 % after the timeout (240 ms with a 200 ms
    # timeout), the rest at once: the late answers arrive while the hub is
    # about to ask the same slave for the other register, in the same shape.
    probe = await servers(LateRtuProbe({1: {"holding": {0: PH, 1: TEMPERATURE}}}, tmp_path,
                                       delay=lambda n: 0.24 if n % 3 == 0 else 0.06))
    hub = await hub_factory(probe_hub(f"    transport: rtu\n    port: {probe.client_port}"))
    readings = collect(hub)
    # 40 requests: after each late answer one resynchronising read goes before the next read.
    await until(lambda: probe.requests >= 40, timeout=50, what="40 requests")
    stats = await plugin_stats(hub)

    assert wrong(readings) == []
    assert len(readings) >= 10 and stats["resyncs"] >= 5, stats
    # Each late answer counted as a failed read, and recognised as late.
    assert stats["failed_reads"] >= 8 and stats["late_answers"] >= 7, stats


@pytest.mark.gen_test(timeout=60)
async def test_shipped_example_with_a_probe_answering_late_publishes_no_wrong_value(hub_factory, servers, tmp_path):
    # The case: the shipped example (timeout 0.5 s) and a probe that answers
    # 700 ms late now and then; it used to publish every temperature as 65.0.
    from test_modbus_runner import ROOT, device_registers
    probe = await servers(LateRtuProbe({
        1: {"holding": {0: PH, 1: TEMPERATURE}},
        2: {"input": dict(enumerate(device_registers(1413.0, "float32", "little", "big")))},
    }, tmp_path, delay=lambda n: 0.7 if n % 4 == 0 else 0.12))
    example = (ROOT / "config/modbus-probe.yaml").read_text()
    example = example.replace("/dev/ttyUSB0", probe.client_port).replace("data/smartanom.db", str(tmp_path / "hub.db"))
    hub = await hub_factory(example)
    readings = collect(hub)
    await until(lambda: probe.requests >= 16, timeout=50, what="16 requests")
    published = {(r.sensor.id, r.value) for r in readings}
    assert published <= {(1, 6.5), (2, 23.5), (3, 1.413)}, published
    assert {sensor for sensor, _ in published} == {1, 2, 3}
    assert (await plugin_stats(hub))["late_answers"] >= 3


@pytest.mark.gen_test(timeout=30)
async def test_answer_with_the_wrong_function_code_is_refused(hub_factory, servers, tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="smartanom.plugins.modbus")
    probe = await servers(LateRtuProbe({1: {"holding": {0: PH, 1: TEMPERATURE}, "input": {0: PH, 1: TEMPERATURE}}}, tmp_path,
                                       wrong_function=True))
    hub = await hub_factory(probe_hub(f"    transport: rtu\n    port: {probe.client_port}"))
    readings = collect(hub)
    await until(lambda: probe.requests >= 6, what="6 requests")
    assert readings == []
    stats = await plugin_stats(hub)
    assert stats["failed_reads"] >= 5 and "answer has function code 4, the request had 3; refused" in stats["last_error"], stats
    assert caplog.text.count("function code 4") == 2  # once per sensor: one failure episode each


@pytest.mark.gen_test(timeout=30)
async def test_local_echo_and_leading_noise_on_rtu(hub_factory, servers, tmp_path):
    # An adapter that echoes the request, and a 0x00 before each answer.
    probe = await servers(LateRtuProbe({1: {"holding": {0: PH, 1: TEMPERATURE}}}, tmp_path, echo=True, noise=b"\x00"))
    hub = await hub_factory(probe_hub(f"    transport: rtu\n    port: {probe.client_port}", extra="    local_echo: true"))
    readings = collect(hub)
    await until(lambda: len(readings) >= 8, what="8 readings")
    assert wrong(readings) == []
    assert (await plugin_stats(hub))["failed_reads"] == 0


@pytest.mark.gen_test(timeout=30)
async def test_echo_without_local_echo_is_a_failed_read_not_a_value(hub_factory, servers, tmp_path):
    # The echoed request (slave 1, FC 3, ...) looks like the start of an answer:
    # without `local_echo: true` it must fail, never decode into a number.
    probe = await servers(LateRtuProbe({1: {"holding": {0: PH, 1: TEMPERATURE}}}, tmp_path, echo=True))
    hub = await hub_factory(probe_hub(f"    transport: rtu\n    port: {probe.client_port}"))
    readings = collect(hub)
    await until(lambda: probe.requests >= 6, what="6 requests")
    assert wrong(readings) == []


@pytest.mark.gen_test(timeout=40)
async def test_malformed_tcp_answers_are_failed_reads_without_reconnect_churn(hub_factory, servers, caplog):
    caplog.set_level(logging.INFO)
    device = await servers(MalformedTcpDevice({1: {"holding": {0: PH, 1: TEMPERATURE}}}))
    hub = await hub_factory(probe_hub(f"    transport: tcp\n    host: 127.0.0.1\n    port: {device.port}", timeout=0.1, interval=0.3))
    readings = collect(hub)
    changes = []
    hub.bus.subscribe(DeviceStatusChanged, changes.append)
    await until(lambda: len(readings) >= 2, what="good readings first")
    device.malformed = True
    requests = device.requests
    await until(lambda: device.requests >= requests + 20, timeout=20, what="20 malformed answers")
    good = len(readings)
    assert wrong(readings) == []
    assert device.connections == 1, "a malformed answer must not drop the connection"
    assert "data_received" not in caplog.text and "Traceback" not in caplog.text
    malformed_lines = [r for r in caplog.records if r.name == "smartanom.plugins.modbus" and "malformed" in r.getMessage()]
    assert len(malformed_lines) == 2, [r.getMessage() for r in malformed_lines]  # one per sensor's failure episode
    assert [c.status for c in changes] == [DeviceStatus.ACTIVE, DeviceStatus.INACTIVE]
    stats = await plugin_stats(hub)
    assert stats["malformed_answers"] >= 18 and stats["reconnects"] == 0, stats

    device.malformed = False
    await until(lambda: len(readings) > good, what="readings again")
    assert wrong(readings) == []


@pytest.mark.gen_test(timeout=30)
async def test_late_answers_from_a_slow_tcp_gateway(hub_factory, servers):
    # A gateway bridging to a slow RTU probe: its answers come after the hub's timeout.
    device = await servers(MalformedTcpDevice({1: {"holding": {0: PH, 1: TEMPERATURE}}}))
    device.delay = lambda n: 0.24 if n % 3 == 0 else 0.06
    hub = await hub_factory(probe_hub(f"    transport: tcp\n    host: 127.0.0.1\n    port: {device.port}"))
    readings = collect(hub)
    await until(lambda: device.requests >= 24, timeout=30, what="24 requests")
    assert wrong(readings) == [] and len(readings) >= 8
    stats = await plugin_stats(hub)
    assert stats["failed_reads"] >= 6 and stats["reconnects"] == 0, stats


@pytest.mark.gen_test(timeout=30)
@pytest.mark.parametrize("unit", [0, 255])
async def test_tcp_unit_id_0_and_255(hub_factory, servers, unit):
    server = await servers(TcpProbeServer({unit: {"holding": {0: PH, 1: TEMPERATURE}}}))
    hub = await hub_factory(probe_hub(f"    transport: tcp\n    host: 127.0.0.1\n    port: {server.port}", slave=unit))
    readings = collect(hub)
    await until(lambda: {r.sensor.id for r in readings} == {1, 2}, what="both readings")
    assert wrong(readings) == []
    assert {slave for _t, slave, _fc in server.requests} == {unit}
