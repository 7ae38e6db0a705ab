"""A tank's pH goes out of range and back, through the whole hub, with real receivers.

A test plugin publishes the readings (as a probe's plugin would); the grower's
dashboard listens on the WebSocket; notifications go to a real local webhook
(Apprise json://) and a real SMTP server (mailto://). Along the way the hub is
restarted twice, and nothing may be sent twice.
"""

import asyncio
import json
import time

import pytest
from tornado.httpclient import AsyncHTTPClient

from smartanom import Platform, hookimpl

from alert_receivers import JSONReceiver, SMTPReceiver, wait_for

CONFIG = """
storage:
  path: {db}
  flush_interval: 0.05
alerts:
  notify:
    - {hook}
    - {mail}
  for: 0.3
  repeat_interval: 0
  retry: {{initial: 0.1, max: 0.5}}
devices:
  - id: 1
    name: Tank
    profile: lettuce
    offline_after: 60
    sensors:
      - {{id: 1, type: ph}}
plugins:
  - platform: probe
    device: 1
"""


class Probe:
    """The `probe` platform: whatever the test tells it to publish."""

    def __init__(self):
        self.ctx = None

    @hookimpl
    def register_platforms(self):
        return [Platform("probe", self.run)]

    async def run(self, ctx):
        self.ctx = ctx
        await asyncio.Event().wait()

    def publish(self, value):
        self.ctx.publish_reading(1, value)


@pytest.fixture
def receivers():
    hook, mail = JSONReceiver(), SMTPReceiver()
    yield hook, mail
    hook.stop()
    mail.stop()


async def start(hub_factory, tmp_path, hook, mail):
    probe = Probe()
    text = CONFIG.format(db=tmp_path / "tank.db", hook=hook.url, mail=mail.url)
    hub = await hub_factory(text, plugins=[("probe", probe)], entry_points=False)
    await wait_for(lambda: probe.ctx is not None, what="the probe plugin to start")
    return hub, probe


async def post(hub, path, body=b""):
    response = await AsyncHTTPClient().fetch(hub.url + path, method="POST", body=body, raise_error=False)
    return response.code, json.loads(response.body)


async def get(hub, path):
    response = await AsyncHTTPClient().fetch(hub.url + path, raise_error=False)
    return response.code, json.loads(response.body)


async def next_alert(client):
    return await client.receive(type="alert")


async def keep_publishing(probe, value, until, timeout=10.0):
    """Publish `value` every 50 ms until `until()` holds: a probe sampling at 20 Hz."""
    deadline = time.monotonic() + timeout
    while not until():
        assert time.monotonic() < deadline, f"timed out publishing {value}"
        probe.publish(value)
        await asyncio.sleep(0.05)


@pytest.mark.gen_test(timeout=60)
async def test_out_of_range_and_back_reaches_the_grower_once(hub_factory, ws_client, tmp_path, receivers):
    hook, mail = receivers
    hub, probe = await start(hub_factory, tmp_path, hook, mail)
    everything = await ws_client(hub, "/ws/sensor-data/")
    own = await ws_client(hub, "/ws/sensor/1/")
    await keep_publishing(probe, 6.0, lambda: hub.storage.stored >= 3)

    # pH climbs to 7.2: above lettuce's critical 6.8. It must stay out for 0.3 s (`for`).
    crossed = time.monotonic()
    publisher = asyncio.ensure_future(keep_publishing(probe, 7.2, lambda: len(hook.posts) >= 1))
    started = await next_alert(everything)
    assert started["event"] == "started" and started["state"] == "firing"
    assert started["severity"] == "critical" and started["sensor_id"] == 1 and started["device_id"] == 1
    assert started["threshold"] == 6.8 and started["value"] == 7.2 and "pH-down" in started["recommendation"]
    assert (await next_alert(own))["id"] == started["id"]
    await publisher
    notified = hook.posts[0][0] - crossed
    assert time.monotonic() - crossed >= 0.3
    first = hook.bodies[0]
    assert "CRITICAL" in first["title"] and "7.2" in first["message"] and first["type"] == "failure"
    await wait_for(lambda: len(mail.messages) == 1, what="the e-mail")
    assert "CRITICAL" in mail.messages[0]["Subject"]
    await wait_for(lambda: hub.alerts.notifier.sent == 2, what="both attempts to be done")  # the server has it before the client knows

    code, listing = await get(hub, "/api/alerts")
    assert code == 200 and [a["id"] for a in listing["alerts"]] == [started["id"]]
    attempts = listing["alerts"][0]["notifications"]
    assert sorted((n["notice"], n["ok"]) for n in attempts) == [("started", True), ("started", True)]
    assert sorted(n["target"].split("://")[0] for n in attempts) == ["json", "mailto"]
    assert not any("/hook" in n["target"] or "grower@" in n["target"] for n in attempts)  # paths are masked

    code, acked = await post(hub, f"/api/alerts/{started['id']}/ack", json.dumps({"by": "Ana"}).encode())
    assert code == 200 and acked["state"] == "acknowledged" and acked["acknowledged_by"] == "Ana"
    message = await next_alert(everything)
    assert (message["event"], message["state"]) == ("acknowledged", "acknowledged")

    # The hub restarts while the alert is active: it comes back, and is not notified again.
    await keep_publishing(probe, 7.2, lambda: True)
    await hub.stop()
    hub, probe = await start(hub_factory, tmp_path, hook, mail)
    code, listing = await get(hub, "/api/alerts")
    assert [(a["id"], a["state"]) for a in listing["alerts"]] == [(started["id"], "acknowledged")]
    everything = await ws_client(hub, "/ws/sensor-data/")
    await keep_publishing(probe, 7.2, lambda: hub.storage.stored >= 3)
    assert len(hook.posts) == 1 and len(mail.messages) == 1

    # Back to 6.0 (inside 5.6..6.2 by more than the 0.1 hysteresis) for 0.3 s: resolved, and told.
    publisher = asyncio.ensure_future(keep_publishing(probe, 6.0, lambda: len(hook.posts) >= 2))
    resolved = await next_alert(everything)
    assert (resolved["event"], resolved["state"], resolved["id"]) == ("resolved", "resolved", started["id"])
    await publisher
    assert hook.bodies[1]["type"] == "success" and "Resolved" in hook.bodies[1]["title"]
    await wait_for(lambda: len(mail.messages) == 2, what="the resolved e-mail")
    await wait_for(lambda: hub.alerts.notifier.sent == 2, what="both attempts to be done")
    code, listing = await get(hub, "/api/alerts")
    assert listing["alerts"] == []
    code, past = await get(hub, "/api/alerts?state=resolved")
    assert [a["id"] for a in past["alerts"]] == [started["id"]]
    assert sorted(n["notice"] for n in past["alerts"][0]["notifications"]) == ["resolved", "resolved", "started", "started"]

    # Restarted again: nothing is owed, nothing is sent.
    await hub.stop()
    hub, probe = await start(hub_factory, tmp_path, hook, mail)
    await keep_publishing(probe, 6.0, lambda: hub.storage.stored >= 3)
    await wait_for(lambda: hub.alerts.notifier.pending == 0, what="an idle notifier")
    quiet = await (await ws_client(hub, "/ws/sensor-data/")).nothing_within(1.0)
    assert [m for m in quiet if m["type"] == "alert"] == []
    assert len(hook.posts) == 2 and len(mail.messages) == 2
    print(f"\nscenario: crossing -> json:// notification {notified * 1000:.0f} ms (for: 0.3 s); "
          f"notifications per episode: {len(hook.posts)} webhook + {len(mail.messages)} e-mail")
