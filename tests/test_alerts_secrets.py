"""Notification URLs hold secrets (bot tokens, passwords): none may reach a log line,
even at DEBUG, nor a recorded attempt that /api/alerts shows."""

import logging
import socket
import textwrap

import pytest

from smartanom.alerts import store as db
from smartanom.alerts.engine import AlertEngine
from smartanom.alerts.model import FakeClock
from smartanom.alerts.notify import _scrub
from smartanom.bus import EventBus
from smartanom.config import load_config
from smartanom.status import StatusTracker
from smartanom.websocket import FanOut

from alert_receivers import wait_for

SECRETS = ("TGTOKENSECRET", "JPWSECRET", "HDRSECRET")

YAML = """
storage: {{path: {db}}}
alerts:
  notify:
    - tgram://123456:TGTOKENSECRET/999
    - json://juser:JPWSECRET@127.0.0.1:{port}/hook?+X-Api-Key=HDRSECRET
  timeout: 2
  no_data_after: 0
devices:
  - id: 1
    name: Tank
    sensors:
      - {{id: 1, type: ph}}
"""


@pytest.fixture
def engine(io_loop, tmp_path):
    path = tmp_path / "hub.yaml"
    with socket.socket() as free:  # nothing listens on it: the webhook fails to connect
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    path.write_text(textwrap.dedent(YAML.format(db=tmp_path / "a.db", port=port)))
    config = load_config(path, {})
    registry = config.build_registry()
    bus = EventBus()
    made = AlertEngine(config, registry, bus, FanOut(), StatusTracker(registry, bus), clock=FakeClock(), tick=3600)
    io_loop.run_sync(made.start)
    yield made
    io_loop.run_sync(made.stop)


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
        await _fail_twice(engine)
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
    recorded = await engine.store.call(db.attempts, 1)
    assert len(recorded) == 2 and not any(a["ok"] for a in recorded)
    shown = repr(recorded) + repr(engine.health())
    assert any("Notifying" in line and "failed" in line for line in lines)  # the failures are logged...
    leaked = [(secret, text) for secret in SECRETS for text in lines + [shown] if secret in text]
    assert leaked == []  # ...without a secret


async def _fail_twice(engine):
    engine.raise_alert("tank_dry", "custom", "Tank 1 is dry", severity="critical", device_id=1)
    engine.check()
    await wait_for(lambda: engine.notifier.failed == 2, what="both attempts to fail")


def test_an_error_quoting_the_request_url_is_recorded_without_the_token():
    error = "Max retries exceeded with url: /bot123456:TGTOKENSECRET/sendMessage"
    assert _scrub(error, "tgram://123456:TGTOKENSECRET/999") == "Max retries exceeded with url: /bot****:****/sendMessage"
