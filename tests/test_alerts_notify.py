"""Notifications: retries with backoff and repeat intervals on simulated time, every
attempt recorded, and a hanging notification service that never delays readings."""

import asyncio
import logging
import socket
import textwrap
import time

import pytest

from smartanom.alerts import store as db
from smartanom.alerts.engine import AlertEngine
from smartanom.alerts.model import FakeClock
from smartanom.alerts import notify
from smartanom.alerts.notify import STOP_WAIT, _scrub
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
def urls(hook, request):
    if getattr(request, "param", None) == "alike":
        # Two webhooks whose masked forms are the same (json://127.0.0.1:PORT/h...k/t...s).
        return [f"{hook.url}/tank-a-alerts", f"{hook.url}/tank-b-alerts"]
    return [hook.url]  # a test parametrizes `urls` for other targets


@pytest.fixture
def engine(io_loop, tmp_path, urls):
    """An engine on a FakeClock; its own timer is kept out of the way (tick=3600)."""
    path = tmp_path / "hub.yaml"
    path.write_text(textwrap.dedent(YAML.format(db=tmp_path / "a.db", url=", ".join(f'"{u}"' for u in urls))))
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


@pytest.mark.gen_test(timeout=30)
async def test_a_hanging_service_does_not_hold_up_the_other_targets(hub_factory, ws_client, hook):
    server = _silent_server()
    try:
        hanging = f"json://127.0.0.1:{server.getsockname()[1]}/hook"
        hub = await hub_factory(HUB.format(port=server.getsockname()[1]).replace(f'["{hanging}"]', f'["{hanging}", "{hook.url}"]'))
        hub.accept_reading(hub.registry.sensor(1), 7.5, None)
        # The first target waits for its 30 s timeout; the grower's e-mail or phone must not.
        await wait_for(lambda: hook.posts, timeout=5, what="the second target's notice")
        assert "CRITICAL: pH on Tank is 7.5" in hook.bodies[0]["title"]
        assert hub.alerts.notifier._busy  # the first is still waiting on its service
        await hub.stop()
    finally:
        server.close()


# Notification URLs hold secrets (bot tokens, passwords): none may reach a log line, even
# at DEBUG, nor a recorded attempt that /api/alerts shows. Nothing listens on port 9.
SECRETS = ("TGTOKENSECRET", "JPWSECRET", "HDRSECRET")
SECRET_URLS = ["tgram://123456:TGTOKENSECRET/999", "json://juser:JPWSECRET@127.0.0.1:9/hook?+X-Api-Key=HDRSECRET"]


@pytest.mark.parametrize("urls", [SECRET_URLS])
@pytest.mark.gen_test(timeout=30)
async def test_no_secret_of_a_notification_url_in_any_log_line_or_attempt(engine):
    # The hub's log handler sits on the root logger (smartanom.logsetup); pytest's caplog
    # would also see loggers that do not propagate there, so watch the root itself.
    lines: list[str] = []
    handler = logging.Handler(logging.DEBUG)
    handler.emit = lambda record: lines.append(record.getMessage())
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)  # `smartanom run --log-level DEBUG`
    try:
        engine.raise_alert("tank_dry", "custom", "Tank 1 is dry", severity="critical", device_id=1)
        engine.check()
        await wait_for(lambda: engine.notifier.failed == 2, what="both attempts to fail")
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
    recorded = await engine.store.call(db.attempts, 1)
    assert len(recorded) == 2 and not any(a["ok"] for a in recorded)
    shown = repr(recorded) + repr(engine.health())
    assert any("Notifying" in line and "failed" in line for line in lines)  # the failures are logged...
    leaked = [(secret, text) for secret in SECRETS for text in lines + [shown] if secret in text]
    assert leaked == []  # ...without a secret


def test_an_error_quoting_the_request_url_is_recorded_without_the_token():
    error = "Max retries exceeded with url: /bot123456:TGTOKENSECRET/sendMessage"
    assert _scrub(error, "tgram://123456:TGTOKENSECRET/999") == "Max retries exceeded with url: /bot****:****/sendMessage"


@pytest.mark.gen_test(timeout=30)
async def test_a_notice_goes_out_at_once_not_at_the_next_tick(engine, hook):
    # The engine's timer is an hour away (tick=3600): the notice must not wait for it.
    engine.raise_alert("tank_dry", "custom", "Tank 1 is dry", severity="critical", device_id=1)
    await wait_for(lambda: hook.posts, timeout=5, what="the notice")
    assert "Tank 1 is dry" in hook.bodies[0]["message"]


@pytest.mark.gen_test(timeout=30)
async def test_an_alert_raised_while_the_hub_stops_is_left_for_the_next_start(engine, hook):
    await engine.notifier.stop()
    engine.raise_alert("tank_dry", "custom", "Tank 1 is dry", device_id=1)  # no error from a closed pool
    assert engine.notifier.pending == 0 and hook.posts == []


@pytest.mark.parametrize("url, secret", [
    ("ntfy://mysecrettopic", "mysecrettopic"),
    ("ntfys://ntfy.sh/mysecrettopic", "mysecrettopic"),
    ("json://127.0.0.1:8080/hook/secretpath", "secretpath"),
    ("hassio://ha.local/longlivedtoken", "longlivedtoken"),
    ("ntfys://user:password@ntfy.example.com/topic1", "password"),
])
def test_a_target_is_shown_without_its_topic_path_or_token(url, secret):
    # Knowing an ntfy topic or a webhook path is enough to read or post to it.
    shown = notify._shown(url)
    assert secret not in shown and shown.split("://")[0] in ("ntfy", "ntfys", "json", "hassio")


@pytest.mark.parametrize("urls", ["alike"], indirect=True)
@pytest.mark.gen_test(timeout=30)
async def test_targets_that_mask_alike_each_get_their_notice_and_are_remembered_apart(engine, hook):
    alert = engine.raise_alert("tank_dry", "custom", "Tank 1 is dry", device_id=1)
    await advance(engine, 0)
    await wait_for(lambda: len(hook.posts) == 2, what="a notice to each target")
    await wait_for(lambda: engine.notifier.sent == 2, what="both attempts recorded")
    delivered = await engine.store.call(db._delivered, alert.id)  # what a restarted hub reloads
    assert len(delivered) == 2 and all(key.startswith("started:") for key in delivered)
    shown = {a["target"] for a in await attempts(engine, alert.id)}
    assert len(shown) == 1 and "tank-a" not in shown.pop()  # alike to the eye, apart in the records
