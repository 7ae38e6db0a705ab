"""core/frames.py: broadcast frames built once and written per connection per loop turn.

Against real Tornado servers on free ports, with real WebSocket clients (and a
raw socket where the bytes on the wire are the point).
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os

import pytest
import tornado.httpclient
import tornado.web
import tornado.websocket

from conftest import until
from smartanom import protocol
from smartanom.frames import accepts_prebuilt, text_frame

HUB = """
devices:
  - id: 1
    name: Hydroponic System 1
    sensors:
      - {id: 1, type: temperature}
      - {id: 2, type: ph}
"""


@pytest.fixture
def hub(io_loop, hub_factory):
    return io_loop.run_sync(lambda: hub_factory(HUB))


class RawClient:
    """A WebSocket client on a bare socket: sees the exact bytes the server writes."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader, self.writer = reader, writer

    @classmethod
    async def connect(cls, port: int, path: str) -> "RawClient":
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write(
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert b" 101 " in head.split(b"\r\n")[0], head
        return cls(reader, writer)

    async def read_frame(self) -> bytes:
        """One whole frame, header included."""
        head = await asyncio.wait_for(self.reader.readexactly(2), 5)
        n = head[1] & 0x7F
        extra = b""
        if n == 126:
            extra = await self.reader.readexactly(2)
            n = int.from_bytes(extra, "big")
        elif n == 127:
            extra = await self.reader.readexactly(8)
            n = int.from_bytes(extra, "big")
        return head + extra + await self.reader.readexactly(n)

    def send_texts(self, *texts: str) -> None:
        """Several masked text frames in one TCP write, so the server reads them in one turn."""
        out = b""
        for text in texts:
            payload, key = text.encode(), os.urandom(4)
            n = len(payload)
            head = bytes((0x81, 0x80 | n)) if n < 126 else bytes((0x81, 0x80 | 126)) + n.to_bytes(2, "big")
            out += head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))
        self.writer.write(out)

    def close(self) -> None:
        self.writer.close()


def _payload(frame: bytes) -> dict:
    n = frame[1] & 0x7F
    start = 2 if n < 126 else (4 if n == 126 else 10)
    return json.loads(frame[start:])


TEXTS = ["", "x" * 125, "y" * 126, "z" * 65535, "w" * 65536, '{"device_name":"Gewächshaus ☀"}']


class _EchoBothWays(tornado.websocket.WebSocketHandler):
    """Writes each text twice: through Tornado's write_message, then as text_frame bytes."""

    def open(self) -> None:
        for text in TEXTS:
            self.write_message(text)
            self.ws_connection.stream.write(text_frame(text))


@pytest.mark.gen_test
async def test_text_frame_is_byte_for_byte_what_tornado_writes():
    app = tornado.web.Application([(r"/", _EchoBothWays)])
    server = app.listen(0, "127.0.0.1")
    try:
        port = next(iter(server._sockets.values())).getsockname()[1]
        client = await RawClient.connect(port, "/")
        for text in TEXTS:
            by_tornado = await client.read_frame()
            by_us = await client.read_frame()
            assert by_us == by_tornado, (len(text), by_us[:12], by_tornado[:12])
        client.close()
    finally:
        server.stop()


class _Record(tornado.websocket.WebSocketHandler):
    seen: list = []

    def open(self) -> None:
        self.seen.append(accepts_prebuilt(self))


class _RecordCompressed(_Record):
    def get_compression_options(self):
        return {}  # offer permessage-deflate


@pytest.mark.gen_test
async def test_prebuilt_frames_only_where_no_compression_was_negotiated():
    _Record.seen = []
    app = tornado.web.Application([(r"/plain", _Record), (r"/deflate", _RecordCompressed)])
    server = app.listen(0, "127.0.0.1")
    try:
        port = next(iter(server._sockets.values())).getsockname()[1]
        plain = await tornado.websocket.websocket_connect(f"ws://127.0.0.1:{port}/plain", compression_options={})
        deflate = await tornado.websocket.websocket_connect(f"ws://127.0.0.1:{port}/deflate", compression_options={})
        await until(lambda: len(_Record.seen) == 2, what="both connections opened on the server")
        assert _Record.seen == [True, False]
        plain.close()
        deflate.close()
    finally:
        server.stop()


@pytest.mark.gen_test
async def test_a_burst_in_one_loop_turn_reaches_every_subscriber_complete_and_in_order(hub, ws_client):
    dashboards = [await ws_client(hub, "/ws/sensor-data/") for _ in range(3)]
    one_sensor = await ws_client(hub, "/ws/sensor/1/")
    await until(lambda: clients_are(hub, 4), what="four subscribed clients")
    sensor = hub.registry.sensor(1)
    for i in range(300):  # no await in between: one loop turn, one write per connection
        hub.accept_reading(sensor, float(i), None)
    for client in dashboards + [one_sensor]:
        values = [(await client.receive(type="sensor_data_update"))["value"] for _ in range(300)]
        assert values == [float(i) for i in range(300)]


@pytest.mark.gen_test
async def test_a_reply_comes_after_the_broadcasts_caused_before_it(hub):
    client = await RawClient.connect(hub.port, "/ws/sensor-data/")
    # A reading and a bad message, read by the hub in one turn: the echo of the
    # reading is queued, the error is a direct reply; the client must see them in order.
    client.send_texts(json.dumps({"type": "sensor_data", "sensor_id": 1, "value": 20.5}), "{not json")
    kinds = []
    while len(kinds) < 2:
        message = _payload(await client.read_frame())
        if message["type"] != "device_status":
            kinds.append((message["type"], message.get("value") or message.get("code")))
    assert kinds == [("sensor_data_update", 20.5), ("error", "INVALID_JSON")]
    client.close()


@pytest.mark.gen_test
async def test_a_client_gone_mid_batch_costs_the_others_nothing(hub, ws_client, caplog):
    leaving = await RawClient.connect(hub.port, "/ws/sensor-data/")
    staying = await ws_client(hub, "/ws/sensor-data/")
    await until(lambda: clients_are(hub, 2), what="two subscribed clients")
    sensor = hub.registry.sensor(2)
    with caplog.at_level(logging.ERROR, logger="smartanom"):
        leaving.writer.transport.abort()
        for i in range(50):
            hub.accept_reading(sensor, float(i), None)
        values = [(await staying.receive(type="sensor_data_update"))["value"] for _ in range(50)]
        await until(lambda: clients_are(hub, 1), what="the hub to notice the aborted client")
        hub.accept_reading(sensor, 99.0, None)
        assert (await staying.receive(type="sensor_data_update"))["value"] == 99.0
    assert values == [float(i) for i in range(50)]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


@pytest.mark.gen_test
async def test_updates_queued_at_shutdown_go_out_before_the_close_frame(hub, ws_client):
    client = await ws_client(hub, "/ws/sensor-data/")
    await until(lambda: clients_are(hub, 1), what="the client subscribed")
    sensor = hub.registry.sensor(1)
    for i in range(5):
        hub.accept_reading(sensor, float(i), None)
    await hub.stop()
    values = []
    while True:
        text = await asyncio.wait_for(client.conn.read_message(), 5)
        if text is None:
            break
        message = json.loads(text)
        if message["type"] == "sensor_data_update":
            values.append(message["value"])
    assert values == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert client.conn.close_code == 1001


@pytest.mark.gen_test
async def test_pong_after_queued_updates_on_the_same_connection(hub):
    client = await RawClient.connect(hub.port, "/ws/sensor/2/")
    client.send_texts(json.dumps({"type": "sensor_data", "value": 6.2}), json.dumps({"type": "ping"}))
    first, second = _payload(await client.read_frame()), _payload(await client.read_frame())
    assert (first["type"], first["value"]) == ("sensor_data_update", 6.2)
    assert second == json.loads(protocol.PONG)
    client.close()


async def clients_are(hub, n: int) -> bool:
    """Whether GET /api/health counts `n` open WebSocket connections (each subscribed on open)."""
    response = await tornado.httpclient.AsyncHTTPClient().fetch(f"{hub.url}/api/health", raise_error=False)
    return json.loads(response.body)["clients"] == n
