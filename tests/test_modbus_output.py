"""The modbus output against a real pymodbus server: coils and holding registers, read back by a second client."""

import pytest
from pymodbus.client import AsyncModbusTcpClient

from modbus_server import TcpProbeServer
from control_harness import until


def hub_yaml(port):
    return f"""
devices:
  - id: 1
    name: Tank
    sensors:
      - {{id: 1, type: ph}}
control:
  period: 0.2
outputs:
  - id: pump
    name: Nutrient pump
    type: modbus
    device: 1
    slave: 3
    address: 5
  - id: valve
    name: Top-off valve
    type: modbus
    slave: 3
    register_type: holding
    address: 40
    on_value: 255
    off_value: 0
plugins:
  - platform: modbus
    name: probes
    device: 1
    transport: tcp
    host: 127.0.0.1
    port: {port}
    timeout: 0.2
    gap: 0.01
    reconnect_delay: 0.1
    reconnect_delay_max: 0.2
    sensors:
      - {{sensor: 1, slave: 3, address: 0, data_type: uint16, scale: 0.01, interval: 0.3}}
"""


async def read_back(port):
    client = AsyncModbusTcpClient("127.0.0.1", port=port)
    await client.connect()
    try:
        coil = (await client.read_coils(5, count=1, device_id=3)).bits[0]
        register = (await client.read_holding_registers(40, count=1, device_id=3)).registers[0]
    finally:
        client.close()
    return coil, register


@pytest.mark.gen_test(timeout=60)
async def test_coil_and_register_follow_the_outputs_and_end_safe(hub_factory):
    server = await TcpProbeServer({3: {"holding": {0: 600, 40: 7}}}).start()
    try:
        hub = await hub_factory(hub_yaml(server.port))
        pump, valve = hub.control.outputs.get("pump"), hub.control.outputs.get("valve")
        await until(lambda: pump.available and valve.available)  # safe state reached once the bus is up
        assert await read_back(server.port) == (False, 0)
        await hub.control.override("pump", True, 60, "test")
        await hub.control.override("valve", True, 60, "test")
        assert pump.on and valve.on
        assert await read_back(server.port) == (True, 255)
        await hub.stop()
        assert await read_back(server.port) == (False, 0)
    finally:
        await server.stop()


@pytest.mark.gen_test(timeout=60)
async def test_a_silent_slave_or_a_lost_server_leaves_the_output_unavailable(hub_factory):
    server = await TcpProbeServer({3: {"holding": {0: 600}}}).start()
    try:
        hub = await hub_factory(hub_yaml(server.port))
        pump = hub.control.outputs.get("pump")
        await until(lambda: pump.available and pump.on is False)
        server.muted.add(3)
        await hub.control.override("pump", True, 60, "test")
        assert pump.available is False and "slave 3 coil 5: no answer" in pump.error
        server.muted.clear()
        await until(lambda: pump.available and pump.on is True)
        await server.stop()
        await hub.control.override("pump", False, 60, "test")
        assert pump.available is False
        await server.start()
        await until(lambda: pump.available and pump.on is False)
        assert (await read_back(server.port))[0] is False
    finally:
        await server.stop()
