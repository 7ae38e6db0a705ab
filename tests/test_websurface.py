"""What every request meets before a handler (core/websurface.py), against a real hub."""

import asyncio
import resource
import socket
import subprocess
import sys
import time

import pytest
import tornado.httpclient
import tornado.websocket
from tornado.httpclient import AsyncHTTPClient, HTTPRequest

from smartanom.testing import free_port

HUB = """
devices:
  - id: 1
    name: Tank
    sensors:
      - {id: 1, type: ph}
"""


@pytest.fixture
def hub(io_loop, hub_factory):
    return io_loop.run_sync(lambda: hub_factory(HUB + "server:\n  allowed_hosts: [hub.example]\n"))


async def fetch(hub, path, method="GET", headers=None):
    return await AsyncHTTPClient().fetch(HTTPRequest(hub.url + path, method=method, headers=headers), raise_error=False)


@pytest.mark.gen_test
async def test_every_answer_says_nosniff_and_no_page_can_be_framed(hub):
    for path in ("/", "/websocket-test/", "/api/health", "/api/nowhere", "/static/dashboard.js", "/static/missing.js", "/nowhere"):
        response = await fetch(hub, path)
        assert response.headers["X-Content-Type-Options"] == "nosniff", path
        assert response.headers["X-Frame-Options"] == "DENY", path
        assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"], path
    dashboard = (await fetch(hub, "/")).headers["Content-Security-Policy"]
    assert "script-src 'self';" in dashboard and "connect-src 'self'" in dashboard


@pytest.mark.gen_test
async def test_only_the_hubs_own_names_and_addresses_are_answered(hub):
    port = hub.port
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}", f"{socket.gethostname()}:{port}", "hub.example", f"10.1.2.3:{port}"):
        assert (await fetch(hub, "/api/health", headers={"Host": host})).code == 200, host
    for host in (f"attacker.example:{port}", "rebind.evil", "127.0.0.1.nip.io"):
        response = await fetch(hub, "/api/health", headers={"Host": host})
        assert response.code == 421 and b"server.allowed_hosts" in response.body, host
    # A rebinding page's WebSocket: the origin matches its Host, and still it is refused.
    request = HTTPRequest(f"ws://127.0.0.1:{port}/ws/sensor-data/", headers={"Host": "rebind.evil", "Origin": "http://rebind.evil"})
    with pytest.raises(tornado.httpclient.HTTPClientError) as refused:
        await tornado.websocket.websocket_connect(request)
    assert refused.value.code == 421


@pytest.mark.gen_test
async def test_oversized_requests_get_414_and_431_and_nul_in_a_static_path_a_404(hub):
    huge = await fetch(hub, "/api/sensors/1/readings?since=" + "x" * 100_000)
    assert huge.code == 414
    headers = await fetch(hub, "/api/health", headers={"X-Junk": "y" * 40_000})
    assert headers.code == 431
    for path in ("/static/x%00.txt", "/static/%00", "/static/vendor/%00uPlot.min.css"):
        assert (await fetch(hub, path)).code == 404, path
    assert (await fetch(hub, "/api/health")).code == 200  # and the hub is fine


@pytest.mark.gen_test
async def test_head_on_health_answers_like_get(hub):
    head, get = await fetch(hub, "/api/health", method="HEAD"), await fetch(hub, "/api/health")
    assert head.code == get.code == 200
    assert head.body == b"" and head.headers["Content-Type"] == get.headers["Content-Type"]


def _connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    return sock


def _answer(sock: socket.socket) -> bytes:
    data = b""
    while True:
        chunk = sock.recv(4096)
        if not chunk:
            return data
        data += chunk


@pytest.mark.gen_test(timeout=20)
async def test_connections_over_the_caps_get_503_and_idle_ones_are_closed(io_loop, hub_factory, caplog):
    hub = await hub_factory(HUB + "server:\n  max_connections: 6\n  max_connections_per_client: 3\n  idle_timeout: 0.5\n")
    held = [await asyncio.to_thread(_connect, hub.port) for _ in range(3)]
    extra = [await asyncio.to_thread(_connect, hub.port) for _ in range(3)]
    for sock in extra:
        answer = await asyncio.to_thread(_answer, sock)
        assert answer.startswith(b"HTTP/1.1 503") and b"Retry-After" in answer
    assert [r for r in caplog.records if "Refusing connections" in r.getMessage()].__len__() == 1  # once a minute
    # The three that never sent a request are closed within idle_timeout, freeing their places.
    for sock in held:
        assert await asyncio.to_thread(_answer, sock) == b""
    assert (await fetch(hub, "/api/health")).code == 200


def test_out_of_file_descriptors_the_hub_pauses_and_logs_once(tmp_path):
    """The issue's case: idle sockets past the open-files limit must not spin the accept loop."""
    (tmp_path / "hub.yaml").write_text(HUB + f"server:\n  idle_timeout: 1\nstorage:\n  path: {tmp_path}/hub.db\n")
    port = free_port()

    def limit():
        resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))  # hard limit too: the hub cannot raise it

    log = tmp_path / "hub.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "smartanom.cli", "run", "--config", str(tmp_path / "hub.yaml"), "--host", "127.0.0.1", "--port", str(port)],
            stdout=out, stderr=subprocess.STDOUT, preexec_fn=limit,
        )
    try:
        deadline = time.monotonic() + 20
        while "Serving on" not in log.read_text():
            assert time.monotonic() < deadline and proc.poll() is None, log.read_text()
            time.sleep(0.05)
        idle = [_connect(port) for _ in range(100)]
        deadline = time.monotonic() + 20
        while "Cannot accept connections" not in log.read_text():
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.05)
        cpu_before = _cpu_seconds(proc.pid)
        time.sleep(1.0)  # measuring how busy it is over a second, not waiting for a condition
        assert _cpu_seconds(proc.pid) - cpu_before < 0.5, "the accept loop spins"
        for sock in idle:
            sock.close()
        # With the idle sockets gone (or timed out) it serves again.
        deadline = time.monotonic() + 20
        while True:
            try:
                sock = _connect(port)
                sock.sendall(b"GET /api/health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
                if _answer(sock).startswith(b"HTTP/1.1 200"):
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.1)
    finally:
        proc.terminate()
        proc.wait(30)
    text = log.read_text()
    assert text.count("Cannot accept connections") == 1 and "Too many open files" in text
    assert len(text) < 20_000, "the log was flooded"


def _cpu_seconds(pid: int) -> float:
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100.0  # utime + stime, in clock ticks of 1/100 s


def test_the_soft_open_files_limit_is_raised_at_start():
    from smartanom.websurface import raise_open_files_limit

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))
        before, after = raise_open_files_limit()
        assert before == 256 and after == resource.getrlimit(resource.RLIMIT_NOFILE)[0] > 256
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_under_a_low_open_files_limit_the_cap_is_lowered_so_excess_connections_get_503(tmp_path):
    """ulimit -n 256 with the default cap of 1,024: connections past the limit would find no
    file descriptor and nobody would answer; the hub lowers its cap and answers 503 instead."""
    (tmp_path / "hub.yaml").write_text(HUB + f"server:\n  idle_timeout: 30\nstorage:\n  path: {tmp_path}/hub.db\n")
    port = free_port()

    def limit():
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))

    log = tmp_path / "hub.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "smartanom.cli", "run", "--config", str(tmp_path / "hub.yaml"), "--host", "127.0.0.1", "--port", str(port)],
            stdout=out, stderr=subprocess.STDOUT, preexec_fn=limit,
        )
    idle = []
    try:
        deadline = time.monotonic() + 20
        while "Serving on" not in log.read_text():
            assert time.monotonic() < deadline and proc.poll() is None, log.read_text()
            time.sleep(0.05)
        assert "server.max_connections (1024) lowered to 192" in log.read_text()
        idle = [_connect(port) for _ in range(300)]  # more than the limit allows, and never a request
        assert _answer(_connect(port)).startswith(b"HTTP/1.1 503")  # an answer at once, not silence
    finally:
        for sock in idle:
            sock.close()
        proc.terminate()
        proc.wait(30)
    assert "Cannot accept connections" not in log.read_text()
