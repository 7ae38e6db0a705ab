"""Notifications: retries with backoff and repeat intervals on simulated time, every
attempt recorded, and a hanging notification service that never delays readings."""

import asyncio
import socket
import textwrap
import time

import pytest

from smartanom.alerts import store as db
from smartanom.alerts.engine import AlertEngine
from smartanom.alerts.model import FakeClock
from smartanom.alerts.notify import STOP_WAIT
from smartanom.bus import EventBus
from smartanom.config import load_config
from smartanom.status import StatusTracker
from smartanom.websocket import FanOut

from alert_receivers import JSONReceiver, wait_for

YAML = """
storage: {{path: {db}}}
alerts:
  notify: [{url}]
  repeat_interval: 3600
  no_data_after: 0
  retry: {{initial: 10, max: 40, attempts: 4}}
devices:
  - id: 1
    name: Tank
    sensors:
      - {{id: 1, type: ph}}
"""


@pytest.fixture
def hook():
    receiver = JSONReceiver()
    yield receiver
    receiver.stop()


@pytest.fixture
def engine(io_loop, tmp_path, hook):
    """An engine on a FakeClock; its own timer is kept out of the way (tick=3600)."""
    path = tmp_path / "hub.yaml"
    path.write_text(textwrap.dedent(YAML.format(db=tmp_path / "a.db", url=hook.url)))
    config = load_config(path, {})
    registry = config.build_registry()
    bus = EventBus()
    made = AlertEngine(config, registry, bus, FanOut(), StatusTracker(registry, bus), clock=FakeClock(), tick=3600)
    io_loop.run_sync(made.start)
    yield made
    io_loop.run_sync(made.stop)


async def attempts(engine, alert_id):
    return await engine.store.call(db.attempts, alert_id)


async def advance(engine, seconds, done=None):
    """Move simulated time on, run the timers, and wait for what they launched to finish."""
    engine.clock.advance(seconds)
    before = engine.notifier.sent + engine.notifier.failed
    engine.check()
    if engine.notifier._busy:
        await wait_for(lambda: engine.notifier.sent + engine.notifier.failed > before, what="the attempt")


@pytest.mark.gen_test(timeout=30)
async def test_a_failing_service_is_retried_with_backoff_and_every_attempt_recorded(engine, hook):
    hook.failing = True
    alert = engine.raise_alert("tank_dry", "custom", "Tank 1 is dry", severity="critical", device_id=1)
    await advance(engine, 0)
    assert hook.refused == 1
    await advance(engine, 9)  # backoff 10 s: not yet
    assert hook.refused == 1
    await advance(engine, 1)
    assert hook.refused == 2
    await advance(engine, 19)  # then 20 s
    assert hook.refused == 2
    hook.failing = False
    await advance(engine, 1)
    assert len(hook.posts) == 1 and "Tank 1 is dry" in hook.bodies[0]["message"]
    await advance(engine, 1000)
    assert len(hook.posts) == 1  # delivered: not again
    recorded = await attempts(engine, alert.id)
    assert [(a["notice"], a["attempt"], a["ok"]) for a in recorded] == [("started", 1, False), ("started", 2, False), ("started", 3, True)]
    assert recorded[0]["error"] and recorded[2]["error"] == ""


@pytest.mark.gen_test(timeout=30)
async def test_gives_up_after_the_last_attempt(engine, hook):
    hook.failing = True
    alert = engine.raise_alert("tank_dry", "custom", "Tank 1 is dry", device_id=1)
    for step in (0, 10, 20, 40, 40, 1000):
        await advance(engine, step)
    assert hook.refused == 4
    assert [a["ok"] for a in await attempts(engine, alert.id)] == [False] * 4


@pytest.mark.gen_test(timeout=30)
async def test_repeats_while_firing_until_acknowledged_then_one_resolved_notice(engine, hook):
    alert = engine.raise_alert("tank_dry", "custom", "Tank 1 is dry", device_id=1)
    await advance(engine, 0)
    await advance(engine, 3599)
    assert len(hook.posts) == 1
    await advance(engine, 2)
    assert len(hook.posts) == 2 and hook.bodies[1]["title"].startswith("Still WARNING")
    engine.acknowledge(alert.id, "Ana")
    await advance(engine, 4000)
    await advance(engine, 4000)
    assert len(hook.posts) == 2
    engine.resolve_alert("tank_dry")
    await advance(engine, 0)
    await advance(engine, 4000)
    assert len(hook.posts) == 3 and hook.bodies[2]["type"] == "success"
    assert [a["notice"] for a in await attempts(engine, alert.id)] == ["started", "repeat", "resolved"]


def _silent_server():
    """A TCP server that accepts and never answers: a notification service that hangs."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    return server


HUB = """
alerts:
  notify: ["json://127.0.0.1:{port}/hook"]
  for: 0
  timeout: 30
devices:
  - id: 1
    name: Tank
    profile: lettuce
    sensors:
      - {{id: 1, type: ph}}
"""


@pytest.mark.gen_test(timeout=30)
async def test_a_hanging_notification_service_never_delays_readings(hub_factory, ws_client):
    server = _silent_server()
    try:
        hub = await hub_factory(HUB.format(port=server.getsockname()[1]))
        client = await ws_client(hub, "/ws/sensor-data/")
        hub.accept_reading(hub.registry.sensor(1), 7.5, None)
        await client.receive(type="alert")
        await wait_for(lambda: hub.alerts.notifier._busy, what="the notification to be in flight")
        started = time.monotonic()
        for value in range(20):
            hub.accept_reading(hub.registry.sensor(1), 7.0 + value / 100, None)
            update = await client.receive(type="sensor_data_update")
            assert update["value"] == 7.0 + value / 100
        assert hub.alerts.notifier._busy  # still waiting on the service...
        assert time.monotonic() - started < 2.0  # ...while 20 readings went through
        stopping = time.monotonic()
        await hub.stop()  # and it does not hold up a stopping hub beyond STOP_WAIT
        assert time.monotonic() - stopping < STOP_WAIT + 2.0
    finally:
        server.close()
