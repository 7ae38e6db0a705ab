"""Fixtures for the browser tests: Debian's headless Chromium driven by Playwright,
and a hub running on its own event loop in a thread (Playwright's sync API must
not run inside the test's event loop).

Without /usr/bin/chromium the browser tests are skipped on a developer machine,
but fail in CI (the CI environment variable set), where .ci/run installs it.
"""

from __future__ import annotations

import asyncio
import json
import os
import textwrap
import threading
import time
from pathlib import Path

import pytest

from smartanom.config import load_config
from smartanom.hub import Hub
from smartanom.testing import make_plugin_host

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


class ThreadedHub:
    """A real hub serving from a background thread. `call(fn)` runs fn on its loop."""

    def __init__(self, config_path: Path, db_path: Path, port: int = 0, plugins=()):
        self.config_path = config_path
        self.db_path = db_path
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="hub-under-test", daemon=True)
        self.thread.start()
        host = make_plugin_host(plugins)
        config = load_config(
            config_path, host.collect_platforms(), failed_plugins=host.failed,
            sensor_types=host.collect_sensor_types(), output_kinds=host.collect_outputs(),
        )
        config.server.host, config.server.port = "127.0.0.1", port
        config.storage.path = str(db_path)
        self.hub = Hub(config, host)
        self.call(self.hub.start)
        self.port = self.hub.port
        self.url = self.hub.url
        self.stopped = False

    def call(self, fn, *args, timeout: float = 30):
        """Run fn(*args) on the hub's loop (awaiting it if it is a coroutine function)."""

        async def run():
            result = fn(*args)
            return await result if asyncio.iscoroutine(result) else result

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(timeout)

    def store(self, readings, timeout: float = 10) -> None:
        """Publish (sensor_id, epoch ts or None, value) readings and wait until they are on disk."""
        storage = self.hub.storage
        target = storage.stored + len(readings)

        def publish():
            for sensor_id, ts, value in readings:
                self.hub.accept_reading(self.hub.registry.sensor(sensor_id), value, ts)

        self.call(publish)
        deadline = time.monotonic() + timeout
        while storage.stored < target:
            assert time.monotonic() < deadline, "readings were not stored in time"
            time.sleep(0.02)

    def send(self, message: dict, path: str = "/ws/sensor-data/") -> None:
        """Send one message as another WebSocket client would."""
        import websocket  # websocket-client, a test dependency

        conn = websocket.create_connection(f"ws://127.0.0.1:{self.port}{path}", timeout=5)
        try:
            conn.send(json.dumps(message))
            # Wait for our own update (or an error): the hub has then fanned it out.
            while message.get("type") == "sensor_data":
                reply = json.loads(conn.recv())
                assert reply["type"] != "error", reply
                if reply["type"] == "sensor_data_update":
                    break
        finally:
            conn.close()

    def stop(self) -> None:
        if not self.stopped:
            self.stopped = True
            self.call(self.hub.stop)
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)
            self.loop.close()


@pytest.fixture
def threaded_hub(tmp_path):
    """`threaded_hub(yaml_text, port=0, plugins=())` -> a started ThreadedHub, stopped after the test.

    Hubs made by one test share one database file, so a restarted hub sees the history.
    """
    hubs: list[ThreadedHub] = []

    def make(yaml_text: str, port: int = 0, plugins=()) -> ThreadedHub:
        path = tmp_path / f"hub{len(hubs)}.yaml"
        path.write_text(textwrap.dedent(yaml_text))
        hub = ThreadedHub(path, tmp_path / "hub.db", port, plugins)
        hubs.append(hub)
        return hub

    yield make
    for hub in reversed(hubs):
        hub.stop()


# Module scope, not session: while Playwright's sync API is active it holds an
# event loop marked running in this thread, which the async (gen_test) tests of
# other modules could not run beside.
@pytest.fixture(scope="module")
def browser():
    if not os.path.exists(CHROMIUM):
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing: in CI the browser tests must run (.ci/run installs chromium)")
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium); browser tests skipped")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


class WatchedPage:
    """A page that records every console error and uncaught exception."""

    def __init__(self, page):
        self.page = page
        self.errors: list[str] = []
        page.on("console", lambda msg: msg.type == "error" and self.errors.append(f"console: {msg.text}"))
        page.on("pageerror", lambda exc: self.errors.append(f"uncaught: {exc}"))


@pytest.fixture
def page(browser):
    """A fresh tablet-sized page; the test fails if the page logged any JavaScript error.

    A test that provokes expected network errors (a hub restart) removes those from
    `page.watched.errors` before it ends.
    """
    context = browser.new_context(viewport={"width": 1024, "height": 900})
    page = context.new_page()
    watched = WatchedPage(page)
    page.watched = watched
    yield page
    context.close()
    assert watched.errors == [], "JavaScript errors in the page:\n" + "\n".join(watched.errors)
