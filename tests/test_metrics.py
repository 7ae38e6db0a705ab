"""core/metrics.py: GET /metrics parses as Prometheus text and tells what the hub is doing."""

import asyncio
import logging
from importlib import metadata

import pytest
import tornado.httpclient
from prometheus_client.parser import text_string_to_metric_families

HUB = """
storage:
  flush_interval: 0.05
devices:
  - id: 1
    name: Tank
    sensors: [{id: 1, type: ph, min: 0, max: 14}, {id: 2, type: ec}]
  - id: 2
    name: Sim
    sensors: [{id: 3, type: temperature}]
plugins:
  - platform: simulated
    device: 2
    interval: 0.02
"""


async def scrape(hub, query="", headers=None):
    client = tornado.httpclient.AsyncHTTPClient()
    response = await client.fetch(f"{hub.url}/metrics{query}", headers=headers, raise_error=False)
    return response


def samples(text: str) -> dict:
    """{(name, frozenset(labels)): value} of every sample."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return found


async def wait_for(condition, timeout=10.0):
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await condition():
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


@pytest.mark.gen_test(timeout=30)
async def test_metrics_count_readings_clients_storage_and_plugins(hub_factory, ws_client):
    hub = await hub_factory(HUB)
    client = await ws_client(hub, "/ws/sensor-data/")
    for value in (6.5, 6.6, 6.7):
        await client.request({"type": "sensor_data", "sensor_id": 1, "value": value}, type="sensor_data_update")
    refused = await client.request({"type": "sensor_data", "sensor_id": 1, "value": 15}, type="error")
    assert refused["code"] == "INVALID_VALUE"

    async def stored_some():
        return hub.storage.stored >= 10

    await wait_for(stored_some)
    response = await scrape(hub)
    assert response.code == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    got = samples(response.body.decode())
    one = frozenset()

    assert got[("smartanom_readings_accepted_total", one)] >= got[("smartanom_readings_stored_total", one)] >= 10
    assert got[("smartanom_readings_dropped_total", frozenset({("reason", "storage_unavailable")}))] == 0
    assert got[("smartanom_websocket_refused_total", frozenset({("reason", "INVALID_VALUE")}))] == 1
    assert got[("smartanom_websocket_clients", one)] == 1
    assert got[("smartanom_websocket_sent_bytes_total", one)] > 4 * 60  # handshake and four replies at least
    assert got[("smartanom_storage_queue_length", one)] >= 0
    assert got[("smartanom_storage_lag_seconds", one)] >= 0
    assert got[("smartanom_storage_ok", one)] == 1
    assert 0 <= got[("smartanom_event_loop_lag_seconds", one)] < 5
    assert got[("smartanom_build_info", frozenset({("version", metadata.version("smartanom"))}))] == 1
    assert got[("smartanom_start_time_seconds", one)] == hub.started_at
    label = next(iter(hub.instances))
    sim = {("instance", label), ("platform", "simulated"), ("plugin", hub.instances[label].plugin)}
    assert got[("smartanom_plugin_instance_state", frozenset(sim | {("state", "running")}))] == 1
    assert got[("smartanom_plugin_instance_state", frozenset(sim | {("state", "restarting")}))] == 0
    assert got[("smartanom_plugin_instance_restarts_total", frozenset(sim))] == 0

    # Counters move between scrapes; bytes sent include closed connections.
    client.close()

    async def client_gone():
        return not hub.fanout.connections

    await wait_for(client_gone)
    again = samples((await scrape(hub)).body.decode())
    assert again[("smartanom_websocket_clients", one)] == 0
    assert again[("smartanom_websocket_sent_bytes_total", one)] >= got[("smartanom_websocket_sent_bytes_total", one)]
    assert again[("smartanom_readings_accepted_total", one)] > got[("smartanom_readings_accepted_total", one)]


@pytest.mark.gen_test(timeout=30)
async def test_plugin_reads_and_errors_come_from_the_instance_stats(hub_factory):
    hub = await hub_factory(HUB)
    state = next(iter(hub.instances.values()))

    async def running():
        return state.state == "running"

    await wait_for(running)  # its stats are the running instance's ctx.stats from then on
    state.stats.update(reads=41, errors=2, queued=7, connected=True, last_error="timeout")
    got = samples((await scrape(hub)).body.decode())
    labels = {("instance", state.label), ("platform", "simulated"), ("plugin", state.plugin)}
    assert got[("smartanom_plugin_instance_reads_total", frozenset(labels))] == 41
    assert got[("smartanom_plugin_instance_errors_total", frozenset(labels))] == 2
    assert got[("smartanom_plugin_instance_stat", frozenset(labels | {("stat", "queued")}))] == 7
    assert not any(name == "smartanom_plugin_instance_stat" and ("stat", "connected") in lab for name, lab in got)


TOKENS = "read:r" + "x" * 20 + ",write:w" + "y" * 20


@pytest.mark.gen_test(timeout=30)
async def test_metrics_need_a_token_like_the_api_when_auth_is_on(hub_factory, monkeypatch):
    monkeypatch.setenv("SMARTANOM_TOKENS", TOKENS)
    hub = await hub_factory(HUB + "auth:\n  enabled: true\n  tokens_env: SMARTANOM_TOKENS\n")
    denied = await scrape(hub)
    assert denied.code == 401
    assert b"Authorization: Bearer TOKEN" in denied.body
    assert (await scrape(hub, headers={"Authorization": "Bearer wrong-token-xxxxxxxx"})).code == 401
    by_header = await scrape(hub, headers={"Authorization": "Bearer r" + "x" * 20})
    assert by_header.code == 200
    assert ("smartanom_readings_accepted_total", frozenset()) in samples(by_header.body.decode())
    assert (await scrape(hub, "?token=r" + "x" * 20)).code == 200
    openmetrics = await scrape(hub, "?token=r" + "x" * 20, headers={"Accept": "application/openmetrics-text; version=1.0.0"})
    assert openmetrics.headers["Content-Type"].startswith("application/openmetrics-text")
    assert openmetrics.body.endswith(b"# EOF\n")


@pytest.mark.gen_test(timeout=30)
async def test_a_scraper_token_in_the_query_never_reaches_the_access_log(hub_factory, monkeypatch, caplog):
    """docs/metrics.md offers `params: token` to scrapers: every scrape's URL holds the token.
    Tornado's access log writes URLs (4xx as warnings; every request at --log-level DEBUG)."""
    monkeypatch.setenv("SMARTANOM_TOKENS", TOKENS)
    caplog.set_level(logging.INFO, logger="tornado.access")
    hub = await hub_factory(HUB + "auth:\n  enabled: true\n  tokens_env: SMARTANOM_TOKENS\n")
    assert (await scrape(hub, "?token=r" + "x" * 20)).code == 200
    assert (await scrape(hub, "?name=a&token=old-rotated-token-yyyy&x=1")).code == 401
    lines = [r.getMessage() for r in caplog.records if r.name == "tornado.access"]
    assert any(line.startswith("200 GET /metrics?token=REDACTED (") for line in lines), lines
    assert any(line.startswith("401 GET /metrics?name=a&token=REDACTED&x=1 (") for line in lines), lines
    assert not [line for line in lines if "r" + "x" * 20 in line or "old-rotated-token" in line]
