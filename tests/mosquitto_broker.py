"""A real Mosquitto broker and a real MQTT client for the MQTT tests.

Each test gets its own `mosquitto` on a free loopback port (never a system
broker on 1883), with persistence on so that a stop/start keeps the sessions
of clients that asked for one: an `Observer` with `persistent=True` then
receives, after a restart, the QoS 1 messages sent while it was away, whoever
reconnects first. Import the fixtures into a test module:

    from mosquitto_broker import mosquitto, mqtt_observer  # noqa: F401
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import aiomqtt
import pytest

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Mosquitto:
    def __init__(self, directory: Path, users: dict[str, str] | None = None, tls: bool = False):
        """`users`: name -> password, and anonymous clients are refused. `tls`: the
        listener speaks TLS with a certificate for 127.0.0.1 signed by `self.ca_file`."""
        if not os.path.exists(MOSQUITTO):
            pytest.fail("mosquitto is not installed (apt-get install mosquitto; .ci/run does it)")
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.conf = self.dir / "mosquitto.conf"
        self.log = self.dir / "mosquitto.log"
        self.ca_file = self.dir / "ca.crt"
        access = "allow_anonymous true\n"
        if users:
            passwords = self.dir / "passwords"
            passwords.write_text("")
            for name, password in users.items():
                subprocess.run(["mosquitto_passwd", "-b", str(passwords), name, password], check=True)
            access = f"allow_anonymous false\npassword_file {passwords}\n"
        if tls:
            self._make_certificates()
            access += f"cafile {self.ca_file}\ncertfile {self.dir / 'server.crt'}\nkeyfile {self.dir / 'server.key'}\n"
        self.conf.write_text(
            f"listener {self.port} 127.0.0.1\n"
            + access +
            "persistence true\n"
            f"persistence_location {self.dir}/\n"
            f"log_dest file {self.log}\n"
            "log_type all\n"
            # As root, mosquitto would switch to the `mosquitto` user, which cannot write in pytest's tmp dirs.
            + ("user root\n" if os.geteuid() == 0 else "")
        )
        self.process: subprocess.Popen | None = None

    def _make_certificates(self) -> None:
        def openssl(*args: str) -> None:
            subprocess.run(["openssl", *args], cwd=self.dir, check=True, capture_output=True)

        openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-days", "2", "-subj", "/CN=SmarTanom test CA")
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1")
        (self.dir / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
        openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-out", "server.crt", "-days", "2", "-extfile", "san.ext")

    def start(self, timeout: float = 10.0) -> None:
        self.process = subprocess.Popen([MOSQUITTO, "-c", str(self.conf)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"mosquitto exited: {self.process.stderr.read().decode()} {self.read_log()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"mosquitto did not listen on {self.port} within {timeout} s")

    def stop(self) -> None:
        """SIGTERM: mosquitto saves its persistence file and closes every connection."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
        self.process = None

    def read_log(self) -> str:
        return self.log.read_text() if self.log.exists() else ""


class Observer:
    """A real MQTT client that records what arrives on its topics, reconnecting through restarts."""

    def __init__(self, port: int, topics: list[str], persistent: bool = False):
        self.port = port
        self.topics = topics
        self.persistent = persistent
        self.identifier = f"observer-{id(self)}" if persistent else None
        self.messages: asyncio.Queue[aiomqtt.Message] = asyncio.Queue()
        self.subscribed = asyncio.Event()
        self._unread: list[aiomqtt.Message] = []
        self._may_connect = asyncio.Event()
        self._may_connect.set()
        self._task: asyncio.Task | None = None

    async def start(self, timeout: float = 10.0) -> "Observer":
        self._task = asyncio.ensure_future(self._run())
        await asyncio.wait_for(self.subscribed.wait(), timeout)
        return self

    async def _run(self) -> None:
        while True:
            await self._may_connect.wait()
            try:
                client = aiomqtt.Client("127.0.0.1", self.port, identifier=self.identifier, clean_session=False if self.persistent else None)
                async with client:
                    for topic in self.topics:
                        await client.subscribe(topic, qos=1)
                    self.subscribed.set()
                    async for message in client.messages:
                        self.messages.put_nowait(message)
            except aiomqtt.MqttError:
                self.subscribed.clear()
                await asyncio.sleep(0.1)

    def stay_away(self) -> None:
        """Do not reconnect after the next disconnection (until `come_back`)."""
        self._may_connect.clear()

    def come_back(self) -> None:
        self._may_connect.set()

    async def receive(self, topic: str | None = None, timeout: float = 10.0) -> tuple[str, str, bool]:
        """(topic, payload text, retain) of the oldest message not yet received, on `topic`
        (a filter, wildcards allowed) if given; messages on other topics wait for their turn."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            for index, message in enumerate(self._unread):
                if topic is None or message.topic.matches(topic):
                    del self._unread[index]
                    payload = message.payload.decode() if isinstance(message.payload, bytes) else str(message.payload)
                    return message.topic.value, payload, message.retain
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise AssertionError(f"no MQTT message{' on ' + topic if topic else ''} within {timeout} s")
            try:
                self._unread.append(await asyncio.wait_for(self.messages.get(), remaining))
            except asyncio.TimeoutError:
                continue

    async def receive_json(self, topic: str, timeout: float = 10.0) -> dict:
        return json.loads((await self.receive(topic, timeout))[1])

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


async def publish(port: int, topic: str, payload: str | bytes, retain: bool = False) -> None:
    """Publish one message as an outside device (ESPHome, Tasmota, ...) would."""
    async with aiomqtt.Client("127.0.0.1", port) as client:
        await client.publish(topic, payload, qos=1, retain=retain)


@pytest.fixture
def mosquitto(tmp_path):
    broker = Mosquitto(tmp_path / "mosquitto")
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture
def mqtt_observer(io_loop):
    """`await mqtt_observer(port, ["topic/#"], persistent=False)` -> a subscribed Observer."""
    observers: list[Observer] = []

    async def make(port: int, topics: list[str], persistent: bool = False) -> Observer:
        observer = Observer(port, topics, persistent)
        observers.append(observer)
        return await observer.start()

    yield make
    for observer in observers:
        io_loop.run_sync(observer.close, timeout=10)
