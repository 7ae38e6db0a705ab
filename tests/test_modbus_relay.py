"""The modbus plugin against a real pymodbus RTU server behind a misbehaving relay (tests/modbus_relay.py).

Written for the fresh-eyes review of issue 13: a probe that is always a bit
late, answers for another slave, or sends a truncated frame must publish
nothing and be visible where monitoring looks (/api/health, /api/plugins),
not only in the log.
"""

from __future__ import annotations

import json

import pytest
import tornado.httpclient

from modbus_relay import RelayedRtuServer
from test_modbus_misbehaving import probe_hub, wrong
from test_modbus_runner import collect, plugin_stats, servers, until  # noqa: F401 - servers is a fixture

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
