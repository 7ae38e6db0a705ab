"""Clients that stop reading, and clients that vanish, against a real hub.

A raw socket that completes the WebSocket handshake and then never reads is
the realistic slow dashboard (a frozen tab, a tablet in a dead Wi-Fi corner):
its TCP window fills, the hub's unsent bytes for it pile up, and the hub must
let it go (close 4008) while everyone else keeps getting every message.
"""

import asyncio
import base64
import logging
import os
import socket
import struct
import time

import pytest


SLOW = """
devices:
  - id: 1
    name: {name}
    offline_after: 3600
    sensors:
      - {{id: 1, type: temperature}}
server:
  rate_limit: null
  ping_interval: 0
  send_buffer: {{max_bytes: 65536, max_seconds: 0.5}}
"""
# A long device name makes each update about 1.1 kB, so the buffers fill quickly.
HUB = SLOW.format(name="Greenhouse " + "x" * 1000)


async def raw_ws_connect(port: int, path: str, rcvbuf: int = 4096) -> socket.socket:
    """A WebSocket client made of a bare socket: handshake, then only what the test does."""
    loop = asyncio.get_running_loop()
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)  # a small window fills fast
    sock.setblocking(False)
    await loop.sock_connect(sock, ("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    request = (
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    await loop.sock_sendall(sock, request.encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += await loop.sock_recv(sock, 1)  # byte by byte: leave any frame after it unread
    assert head.startswith(b"HTTP/1.1 101"), head
    return sock


async def read_frames_until_close(sock: socket.socket, timeout: float) -> tuple[int, int | None]:
    """Read server frames: (number of text frames, close code or None if the socket ended first)."""
    loop = asyncio.get_running_loop()
    buf = b""
    texts = 0
    deadline = loop.time() + timeout

    async def need(n):
        nonlocal buf
        while len(buf) < n:
            chunk = await asyncio.wait_for(loop.sock_recv(sock, 65536), deadline - loop.time())
            if not chunk:
                raise EOFError
            buf += chunk

    try:
        while True:
            await need(2)
            opcode, length = buf[0] & 0x0F, buf[1] & 0x7F
            start = 2
            if length == 126:
                await need(4)
                length, start = struct.unpack("!H", buf[2:4])[0], 4
            elif length == 127:
                await need(10)
                length, start = struct.unpack("!Q", buf[2:10])[0], 10
            await need(start + length)
            payload, buf = buf[start : start + length], buf[start + length :]
            if opcode == 0x8:
                return texts, struct.unpack("!H", payload[:2])[0]
            texts += opcode == 0x1
    except (EOFError, ConnectionError):
        return texts, None


async def publish(hub, count: int, sent_at: dict, start: int = 0) -> None:
    sensor = hub.registry.sensor(1)
    for i in range(start, start + count):
        sent_at[i] = time.monotonic()
        hub.accept_reading(sensor, float(i), None)
        if i % 20 == 19:
            await asyncio.sleep(0.002)  # let the loop write, as a real stream of readings would


async def collect(client, count: int, sent_at: dict, latencies: list) -> list[int]:
    got = []
    while len(got) < count:
        message = await client.receive(type="sensor_data_update", timeout=20)
        latencies.append(time.monotonic() - sent_at[int(message["value"])])
        got.append(int(message["value"]))
    return got


async def wait_for(condition, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        await asyncio.sleep(0.05)
    return condition()


@pytest.mark.gen_test(timeout=60)
async def test_a_client_that_stops_reading_is_closed_and_others_are_unaffected(hub_factory, ws_client, caplog):
    caplog.set_level(logging.WARNING, logger="smartanom.websocket")
    hub = await hub_factory(HUB)
    stalled = await raw_ws_connect(hub.port, "/ws/sensor-data/")
    assert await wait_for(lambda: len(hub.fanout.all) == 1, 5)
    (stalled_handler,) = hub.fanout.all
    healthy = [await ws_client(hub, "/ws/sensor-data/") for _ in range(3)]
    assert await wait_for(lambda: len(hub.fanout.all) == 4, 5)

    count, sent_at, latencies = 3000, {}, []
    readers = [asyncio.ensure_future(collect(c, count, sent_at, latencies)) for c in healthy]
    await publish(hub, count, sent_at)
    results = await asyncio.gather(*readers)

    # Everyone else got every reading, in order, promptly.
    for got in results:
        assert got == list(range(count))
    assert max(latencies) < 2.0, max(latencies)  # generous: a busy shared machine, not a benchmark

    # The stalled client was let go, with a log line, before its backlog passed the hard cap.
    assert hub.fanout.stats.too_slow == 1
    assert stalled_handler not in hub.fanout.all
    (record,) = [r for r in caplog.records if "does not read fast enough" in r.getMessage()]
    unsent_at_close = record.args[3]
    assert 65536 < unsent_at_close <= 4 * 65536

    # A client that resumes reading finds its backlog, then the close code 4008.
    texts, code = await read_frames_until_close(stalled, timeout=10)
    assert code == 4008 and 0 < texts < count
    stalled.close()
    assert await wait_for(lambda: stalled_handler not in hub.fanout.connections, 10)


@pytest.mark.gen_test(timeout=60)
async def test_a_backlog_held_longer_than_max_seconds_is_closed(hub_factory, ws_client, caplog):
    caplog.set_level(logging.WARNING, logger="smartanom.websocket")
    hub = await hub_factory(HUB)
    stalled = await raw_ws_connect(hub.port, "/ws/device/1/")
    assert await wait_for(lambda: len(hub.fanout.connections) == 1, 5)
    (handler,) = hub.fanout.connections
    # A fixed kernel send buffer (no autotuning) keeps the backlog where the test puts it,
    # like a link that stays slow; otherwise Linux may grow the buffer and absorb it.
    handler.send_buffer.stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 16384)
    sent_at: dict = {}
    i = 0
    # Fill until the backlog is well over max_bytes (the kernel may still take a little)
    # but under the hard cap.
    while handler.send_buffer.unsent <= 1.5 * 65536:
        await publish(hub, 20, sent_at, start=i)
        i += 20
        assert i < 20000, "the backlog never grew: is the socket being read?"
    assert handler.send_buffer.unsent < 4 * 65536
    await publish(hub, 1, sent_at, start=i)
    assert hub.fanout.stats.too_slow == 0  # over the limit, but not for long yet
    await asyncio.sleep(0.6)
    await publish(hub, 1, sent_at, start=i + 1)
    # The fan-out writes at the end of the loop turn (core/frames.py): wait for that write.
    assert await wait_for(lambda: hub.fanout.stats.too_slow == 1, 5)
    (record,) = [r for r in caplog.records if "does not read fast enough" in r.getMessage()]
    assert record.args[4] >= 0.5  # seconds held
    texts, code = await read_frames_until_close(stalled, timeout=10)
    assert code == 4008
    stalled.close()


PINGING = """
devices:
  - id: 1
    name: Tank
    sensors:
      - {id: 1, type: ph}
server:
  ping_interval: 0.3
  ping_timeout: 0.3
"""


@pytest.mark.gen_test(timeout=30)
async def test_server_pings_free_a_peer_that_vanished(hub_factory, ws_client):
    hub = await hub_factory(PINGING)
    vanished = await raw_ws_connect(hub.port, "/ws/sensor-data/")  # never answers a ping
    alive = await ws_client(hub, "/ws/sensor-data/")  # Tornado's client answers pings by itself
    assert await wait_for(lambda: len(hub.fanout.connections) == 2, 5)
    (gone,) = [h for h in hub.fanout.connections if h.request.headers.get("User-Agent") is None]
    # interval + timeout, then the closing handshake's 5 s grace, with room for a busy machine.
    assert await wait_for(lambda: gone not in hub.fanout.connections, 15)
    assert gone not in hub.fanout.all
    assert len(hub.fanout.connections) == 1
    update = await alive.request({"type": "sensor_data", "sensor_id": 1, "value": 6.0}, type="sensor_data_update")
    assert update["value"] == 6.0
    vanished.close()
