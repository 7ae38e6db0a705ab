"""The modbus plugin against a real pymodbus RTU server behind a misbehaving relay (tests/modbus_relay.py).

Written for the fresh-eyes review of issue 13: a probe that is always a bit
late, answers for another slave, or sends a truncated frame must publish
nothing and be visible where monitoring looks (/api/health, /api/plugins),
not only in the log.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import struct

import pytest
import tornado.httpclient

from modbus_relay import RelayedRtuServer
from test_modbus_misbehaving import probe_hub, wrong
from test_modbus_runner import collect, one_sensor_hub, plugin_stats, servers, until  # noqa: F401 - servers is a fixture

HOLDING = {1: {"holding": {0: 650, 1: 235}}}


async def health(hub) -> dict:
    response = await tornado.httpclient.AsyncHTTPClient().fetch(f"{hub.url}/api/health", raise_error=False)
    return json.loads(response.body)


@pytest.mark.gen_test(timeout=60)
@pytest.mark.parametrize("fault", ["late", "wrong_slave", "truncated"])
async def test_a_probe_that_never_answers_usably_is_a_problem_in_health(hub_factory, servers, tmp_path, fault):
    relay = RelayedRtuServer(HOLDING, tmp_path)
    if fault == "late":
        relay.delay = lambda n: 0.25  # 25 % after the 0.2 s timeout, every time
    elif fault == "wrong_slave":
        relay.wrong_slave = 3
    else:
        relay.truncate = 1
    await servers(relay)
    hub = await hub_factory(probe_hub(f"    transport: rtu\n    port: {relay.client_port}"))
    readings = collect(hub)
    await until(lambda: relay.requests >= 6, timeout=30, what="6 requests")

    async def listed():
        return (await health(hub))["problems"]

    await until(listed, timeout=10, what="the failing registers in /api/health")
    report = await health(hub)
    assert report["status"] == "degraded"
    (problem,) = report["problems"]
    assert "2 of 2 register(s) failing" in problem and "sensor 1 (slave 1 holding register 0)" in problem
    assert "since 20" in problem  # an ISO 8601 time: since when
    stats = await plugin_stats(hub)
    assert stats["problem"].startswith("2 of 2 register(s) failing") and stats["problem_since"]
    assert readings == [] and wrong(readings) == []


class HalfAnsweringGateway:
    """A Modbus TCP gateway that accepts, sends half of each answer and hangs up, until `healthy`."""

    def __init__(self):
        self.healthy = False
        self.connections: list[float] = []  # loop time of each accepted connection
        self.port = 0
        self._server: asyncio.Server | None = None

    async def start(self) -> "HalfAnsweringGateway":
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def _serve(self, reader, writer) -> None:
        self.connections.append(asyncio.get_running_loop().time())
        try:
            while True:
                tid, _pid, length, unit = struct.unpack(">HHHB", await reader.readexactly(7))
                function, address, count = struct.unpack(">BHH", (await reader.readexactly(length - 1))[:5])
                body = bytes([function, 2 * count]) + b"".join((612).to_bytes(2, "big") for _ in range(count))
                answer = struct.pack(">HHHB", tid, 0, len(body) + 1, unit) + body
                if not self.healthy:
                    writer.write(answer[:9])  # the header and half the PDU, then gone
                    await writer.drain()
                    break
                writer.write(answer)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None


@pytest.mark.gen_test(timeout=60)
async def test_a_gateway_that_hangs_up_mid_answer_is_one_outage_with_backoff(hub_factory, servers, caplog):
    caplog.set_level(logging.DEBUG, logger="smartanom.plugins.modbus")
    gateway = await servers(HalfAnsweringGateway())
    hub = await hub_factory(one_sensor_hub(f"    transport: tcp\n    host: 127.0.0.1\n    port: {gateway.port}"))
    readings = collect(hub)
    await until(lambda: len(gateway.connections) >= 7, timeout=20, what="7 connections")
    gaps = [b - a for a, b in zip(gateway.connections, gateway.connections[1:])]
    # reconnect_delay 0.1 doubling to reconnect_delay_max 0.4: the waits grow, then stay at the maximum.
    assert min(gaps[-3:]) >= 0.35, gaps
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len([w for w in warnings if "is down" in w]) == 1, warnings
    assert len([r for r in caplog.records if r.levelno == logging.INFO and "reconnected" in r.getMessage()]) <= 1
    assert readings == []
    assert "connection lost" in (await plugin_stats(hub))["problem"]

    gateway.healthy = True
    await until(lambda: readings, timeout=10, what="a reading from the healthy gateway")
    assert {r.value for r in readings} == {6.12}
    assert "problem" not in await plugin_stats(hub)


@pytest.mark.gen_test(timeout=90)
@pytest.mark.parametrize("late", [0.44, 0.6])  # 2.2 and 3 times the 0.2 s timeout: past the late-answer wait
async def test_answers_later_than_any_wait_never_become_another_registers_value(hub_factory, servers, tmp_path, late):
    # pH at 0 and temperature at 1 of one slave: answers of the same shape.
    # A quarter of the answers (drawn with a fixed seed) are very late; with
    # retries: 0 the next request is often the other register, and a late pH
    # answer used to be published as 65.0 °C.
    draw = random.Random(13)
    relay = await servers(RelayedRtuServer(HOLDING, tmp_path, delay=lambda n: late if draw.random() < 0.25 else 0.03))
    hub = await hub_factory(probe_hub(f"    transport: rtu\n    port: {relay.client_port}", interval=0.45))
    readings = collect(hub)
    await until(lambda: relay.requests >= 45, timeout=70, what="45 requests")
    assert wrong(readings) == []
    assert {r.sensor.id for r in readings} == {1, 2}  # it still reads both between the late answers
    stats = await plugin_stats(hub)
    assert stats["resyncs"] >= 3 and stats["failed_reads"] >= 3, stats


@pytest.mark.gen_test(timeout=30)
async def test_a_timeout_says_the_timeout_not_pymodbus_retry_count(hub_factory, servers, tmp_path):
    relay = await servers(RelayedRtuServer(HOLDING, tmp_path, delay=lambda n: 0.5))
    hub = await hub_factory(probe_hub(f"    transport: rtu\n    port: {relay.client_port}"))
    await until(lambda: relay.requests >= 2, timeout=10, what="2 requests")

    async def failed():
        return (await plugin_stats(hub))["last_error"]

    await until(failed, what="a failed read")
    assert (await plugin_stats(hub))["last_error"] == "sensor 1 (slave 1): no answer within the timeout (0.2 s)"


@pytest.mark.gen_test(timeout=90)
async def test_resynchronising_reads_only_registers_the_probe_serves(hub_factory, servers, tmp_path):
    # An input-register-only probe that stays silent on anything else: the
    # resynchronising read must use its own registers (input 0-1 as one read),
    # or after the first late answer it would never be read again.
    relay = RelayedRtuServer({1: {"input": {0: 650, 1: 235}}}, tmp_path)
    draw = random.Random(7)
    relay.delay = lambda n: 0.6 if draw.random() < 0.25 else 0.03
    relay.ignores = lambda function, address, count: function != 4 or address + count > 2
    await servers(relay)
    config = probe_hub(f"    transport: rtu\n    port: {relay.client_port}", interval=0.45)
    hub = await hub_factory(config.replace("address: 0,", "register_type: input, address: 0,").replace("address: 1,", "register_type: input, address: 1,"))
    readings = collect(hub)
    await until(lambda: (relay.requests >= 45 and {r.sensor.id for r in readings[-4:]} == {1, 2}), timeout=70,
                what="45 requests and both registers read lately")
    assert wrong(readings) == []
    assert (await plugin_stats(hub))["resyncs"] >= 3
