"""Pytest fixtures for testing the hub, and plugins for it, on a real server.

This module is a pytest plugin, registered through the `pytest11` entry point
of the smartanom package: wherever smartanom and pytest-tornado are installed,
the fixtures are there without any conftest.py. (Do not also list it in
`pytest_plugins`; with PYTEST_DISABLE_PLUGIN_AUTOLOAD set, pass `-p smartanom`.)
They use pytest-tornado's `io_loop`; mark tests `@pytest.mark.gen_test`.

    @pytest.mark.gen_test
    async def test_readings_flow(hub_factory, ws_client):
        hub = await hub_factory(CONFIG_YAML)
        client = await ws_client(hub, "/ws/sensor-data/")
        update = await client.receive(type="sensor_data_update")
"""

from __future__ import annotations

import asyncio
import json
import textwrap

import pytest
import tornado.websocket

from smartanom.config import load_config
from smartanom.hub import Hub
from smartanom.plugins import PluginHost


def pytest_configure(config) -> None:
    # pytest-tornado 0.8.1 calls APIs that Tornado 6.2+ deprecates (they still
    # work): keep plugin authors' test output free of that noise too.
    for line in (
        "ignore:make_current is deprecated:DeprecationWarning",
        "ignore:clear_current is deprecated:DeprecationWarning",
        "ignore:There is no current event loop:DeprecationWarning",
        "ignore:.*pkg_resources.*:DeprecationWarning",
        "ignore:pkg_resources is deprecated:UserWarning",
    ):
        config.addinivalue_line("filterwarnings", line)


class HubClient:
    """A real WebSocket client of a hub, speaking JSON."""

    def __init__(self, conn: tornado.websocket.WebSocketClientConnection):
        self.conn = conn

    async def send(self, message) -> None:
        await self.conn.write_message(message if isinstance(message, (str, bytes)) else json.dumps(message), binary=isinstance(message, bytes))

    async def receive(self, type: str | None = None, timeout: float = 5.0) -> dict:
        """The next message (of `type`, skipping others). Fails on timeout or close."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise AssertionError(f"no {type or 'message'} within {timeout} s")
            try:
                text = await asyncio.wait_for(self.conn.read_message(), remaining)
            except asyncio.TimeoutError:
                raise AssertionError(f"no {type or 'message'} within {timeout} s") from None
            if text is None:
                raise ConnectionError(f"closed by the hub: {self.conn.close_code} {self.conn.close_reason}")
            message = json.loads(text)
            if type is None or message.get("type") == type:
                return message

    async def request(self, message, type: str | None = None, timeout: float = 5.0) -> dict:
        await self.send(message)
        return await self.receive(type, timeout)

    async def nothing_within(self, seconds: float) -> list[dict]:
        """Messages that arrive within `seconds` (for asserting on silence)."""
        got = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while (remaining := deadline - loop.time()) > 0:
            try:
                text = await asyncio.wait_for(self.conn.read_message(), remaining)
            except asyncio.TimeoutError:
                break
            if text is None:
                break
            got.append(json.loads(text))
        return got

    def close(self) -> None:
        self.conn.close()


def make_plugin_host(plugins=(), entry_points: bool = True) -> PluginHost:
    """Installed plugins (unless entry_points=False), then each `(name, object)`
    or `(name, object, package, version)` of `plugins`, as the hub would load them."""
    host = PluginHost()
    if entry_points:
        host.load_entry_points()
    for name, plugin, *distribution in plugins:
        host.register(plugin, name, *distribution)
    return host


@pytest.fixture
def hub_factory(io_loop, tmp_path):
    """`await hub_factory(yaml_text, plugins=[(name, obj)], entry_points=True)` -> a started Hub.

    Loads the installed plugins (entry_points=True) plus `plugins`, each a
    `(name, object)` or `(name, object, package, version)` whose object holds
    `@smartanom.hookimpl` functions (a module or a class instance). The YAML is
    dedented; config errors raise smartanom.ConfigError as at start-up. The hub
    listens on a free loopback port (hub.port, hub.url) with its database
    under tmp_path unless the YAML names one; it is stopped after the test.
    """
    hubs: list[Hub] = []

    async def make(yaml_text: str, *, plugins=(), entry_points: bool = True) -> Hub:
        path = tmp_path / f"hub{len(hubs)}.yaml"
        path.write_text(textwrap.dedent(yaml_text))
        host = make_plugin_host(plugins, entry_points)
        config = load_config(
            path, host.collect_platforms(), failed_plugins=host.failed, providers=host.platform_providers(),
            sensor_types=host.collect_sensor_types(), output_kinds=host.collect_outputs(),
        )
        config.server.host, config.server.port = "127.0.0.1", 0
        if "path" not in config.storage.model_fields_set:
            config.storage.path = str(tmp_path / f"hub{len(hubs)}.db")
        hub = Hub(config, host)
        hubs.append(hub)
        await hub.start()
        return hub

    yield make
    for hub in reversed(hubs):
        io_loop.run_sync(hub.stop, timeout=30)


@pytest.fixture
def ws_client(io_loop):
    """`await ws_client(hub, "/ws/sensor-data/")` -> a connected HubClient, closed after the test."""
    clients: list[HubClient] = []

    async def connect(hub: Hub, path: str, **kwargs) -> HubClient:
        conn = await tornado.websocket.websocket_connect(f"ws://127.0.0.1:{hub.port}{path}", **kwargs)
        client = HubClient(conn)
        clients.append(client)
        return client

    yield connect
    for client in clients:
        client.close()


def free_port() -> int:
    """A loopback TCP port that was free a moment ago."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class HubProcess:
    """`smartanom run` in a child process, for tests of the command itself.

    with HubProcess(config_path) as hub:   # waits until it serves
        ... hub.url, hub.port ...
    code, output = hub.stop()             # SIGTERM, wait, exit code and log
    """

    def __init__(self, config: str | Path, port: int | None = None, env: dict | None = None, timeout: float = 20.0):
        import os
        import subprocess
        import sys
        import tempfile
        import time

        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._log = tempfile.TemporaryFile(mode="w+")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "smartanom.cli", "run", "--config", str(config), "--host", "127.0.0.1", "--port", str(self.port)],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
        )
        deadline = time.monotonic() + timeout
        while "Serving on" not in self.output:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.proc.kill()
                raise RuntimeError(f"smartanom run did not start (exit {self.proc.poll()}):\n{self.output}")
            time.sleep(0.05)

    @property
    def output(self) -> str:
        self._log.seek(0)
        return self._log.read()

    def stop(self, sig=None, timeout: float = 20.0) -> tuple[int, str]:
        import signal as signals

        if self.proc.poll() is None:
            self.proc.send_signal(sig or signals.SIGTERM)
            try:
                self.proc.wait(timeout)
            except Exception:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode, self.output

    def __enter__(self) -> "HubProcess":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
