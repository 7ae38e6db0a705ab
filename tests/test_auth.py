"""Authentication and roles (core/auth.py) over real WebSocket and HTTP connections."""

import json
import logging
import time
import signal
import textwrap

import pytest
import tornado.httpclient
import tornado.websocket

from smartanom.config import load_config
from smartanom.errors import ConfigError
from smartanom.testing import HubClient, HubProcess, make_plugin_host

READ = "read-token-0123456789abcdef"
WRITE = "write-token-0123456789abcdef"

DEVICES = """
devices:
  - id: 1
    name: Tank
    sensors:
      - {id: 1, type: ph}
"""
SECRETS = f"""
tokens:
  - name: wall-tablet
    role: read
    token: {READ}
  - name: esp32-tank
    role: write
    token: {WRITE}
"""


def token_fragments(*tokens: str) -> list[str]:
    """Every 8-character piece of each token: not even part of one may be logged."""
    return [t[i : i + 8] for t in tokens for i in range(0, len(t) - 7)]


@pytest.fixture(autouse=True)
def no_token_in_the_log(caplog):
    """After every test here: grep everything logged, at every level, for the tokens."""
    caplog.set_level(logging.DEBUG)
    yield
    text = caplog.text + "".join(str(r.args) for r in caplog.records)
    found = sorted({piece for piece in token_fragments(READ, WRITE, *EXTRA_TOKENS) if piece in text})
    assert not found, f"token pieces in the log: {found}"


# Other tokens the tests present (wrong ones included): none may be logged either.
EXTRA_TOKENS = ["wrong-token-0123456789", "nope-nope-nope-nope", "fresh-read-token-4242424242"]


@pytest.fixture
def hub(io_loop, hub_factory, tmp_path):
    (tmp_path / "secrets.yaml").write_text(SECRETS)
    return io_loop.run_sync(lambda: hub_factory(DEVICES + "auth:\n  enabled: true\n  tokens_file: secrets.yaml\n  timeout: 0.5\n"))


def request(url, token=None, header=None):
    headers = {"Authorization": f"Bearer {header}"} if header else {}
    if token:
        url += f"?token={token}"
    return tornado.httpclient.HTTPRequest(url, headers=headers)


async def closed_with(client) -> int:
    assert await client.conn.read_message() is None
    return client.conn.close_code


@pytest.mark.gen_test
async def test_write_token_in_the_url_may_send(hub, ws_client):
    client = await ws_client(hub, f"/ws/sensor-data/?token={WRITE}")
    update = await client.request({"type": "sensor_data", "sensor_id": 1, "value": 6.2}, type="sensor_data_update")
    assert update["value"] == 6.2


@pytest.mark.gen_test
async def test_read_token_in_the_header_subscribes_but_may_not_send(hub, ws_client):
    conn = await tornado.websocket.websocket_connect(request(f"ws://127.0.0.1:{hub.port}/ws/device/1/", header=READ))
    reader = HubClient(conn)
    for message in ({"type": "sensor_data", "sensor_id": 1, "value": 6.0}, {"type": "device_status", "status": "maintenance"}):
        error = await reader.request(message)
        assert error["type"] == "error" and error["code"] == "FORBIDDEN", error
    assert await reader.request({"type": "ping"}) == {"type": "pong"}  # still connected
    writer = await ws_client(hub, f"/ws/sensor/1/?token={WRITE}")
    await writer.send({"type": "sensor_data", "value": 6.4})
    update = await reader.receive(type="sensor_data_update")
    assert update["value"] == 6.4
    reader.close()


@pytest.mark.gen_test
@pytest.mark.parametrize("query", ["", "?token=wrong-token-0123456789", f"?token={WRITE}x", "?token="])
async def test_a_wrong_or_missing_token_gets_unauthorized_and_4001(hub, ws_client, query):
    client = await ws_client(hub, f"/ws/sensor-data/{query}")
    if not query:
        await client.send({"type": "ping"})  # anything but an auth message first
    error = await client.receive()
    assert error["type"] == "error" and error["code"] == "UNAUTHORIZED", error
    assert await closed_with(client) == 4001
    assert hub.fanout.stats.unauthorized == 1


@pytest.mark.gen_test
async def test_a_wrong_bearer_header_gets_unauthorized_and_4001(hub):
    conn = await tornado.websocket.websocket_connect(request(f"ws://127.0.0.1:{hub.port}/ws/sensor-data/", header=READ + "0"))
    client = HubClient(conn)
    assert (await client.receive())["code"] == "UNAUTHORIZED"
    assert await closed_with(client) == 4001


@pytest.mark.gen_test
async def test_token_in_the_first_message(hub, ws_client):
    client = await ws_client(hub, "/ws/sensor-data/")
    writer = await ws_client(hub, f"/ws/sensor-data/?token={WRITE}")
    await writer.request({"type": "sensor_data", "sensor_id": 1, "value": 1.0}, type="sensor_data_update")
    assert await client.nothing_within(0.2) == []  # nothing reaches a connection before its token
    assert await client.request({"type": "auth", "token": READ}) == {"type": "authenticated", "role": "read"}
    await writer.send({"type": "sensor_data", "sensor_id": 1, "value": 2.0})
    assert (await client.receive(type="sensor_data_update"))["value"] == 2.0


@pytest.mark.gen_test
async def test_no_token_in_time_gets_unauthorized(hub, ws_client):
    client = await ws_client(hub, "/ws/sensor-data/")
    error = await client.receive(timeout=5)  # auth.timeout is 0.5 s here
    assert error["code"] == "UNAUTHORIZED" and "within" in error["message"]
    assert await closed_with(client) == 4001


@pytest.mark.gen_test
async def test_unknown_ids_are_not_revealed_before_the_token(hub, ws_client):
    client = await ws_client(hub, "/ws/device/42/")
    assert await client.nothing_within(0.2) == []
    await client.send({"type": "auth", "token": READ})
    assert (await client.receive())["type"] == "authenticated"
    assert (await client.receive())["code"] == "UNKNOWN_DEVICE"
    assert await closed_with(client) == 4004


@pytest.mark.gen_test
@pytest.mark.parametrize("path", ["/api/devices", "/api/devices/1", "/api/plugins", "/api/health"])
async def test_http_api_needs_a_token_of_either_role(hub, path):
    http = tornado.httpclient.AsyncHTTPClient()
    url = f"http://127.0.0.1:{hub.port}{path}"
    for refused in (request(url), request(url, token="nope-nope-nope-nope"), request(url, header=WRITE[:-1])):
        response = await http.fetch(refused, raise_error=False)
        assert response.code == 401
        assert json.loads(response.body)["error"]["code"] == "UNAUTHORIZED"
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    for allowed in (request(url, header=READ), request(url, token=WRITE)):
        response = await http.fetch(allowed, raise_error=False)
        assert response.code == 200, response.body


@pytest.mark.gen_test
async def test_auth_off_needs_no_token(hub_factory, ws_client):
    hub = await hub_factory(DEVICES)
    client = await ws_client(hub, "/ws/sensor-data/")
    update = await client.request({"type": "sensor_data", "sensor_id": 1, "value": 7.0}, type="sensor_data_update")
    assert update["value"] == 7.0
    response = await tornado.httpclient.AsyncHTTPClient().fetch(f"http://127.0.0.1:{hub.port}/api/devices")
    assert response.code == 200


@pytest.mark.gen_test
async def test_tokens_from_an_environment_variable(hub_factory, ws_client, monkeypatch):
    monkeypatch.setenv("HUB_TOKENS", f"read:{READ}, write:{WRITE}")
    hub = await hub_factory(DEVICES + "auth:\n  enabled: true\n  tokens_env: HUB_TOKENS\n")
    reader = await ws_client(hub, f"/ws/sensor-data/?token={READ}")
    assert (await reader.request({"type": "sensor_data", "sensor_id": 1, "value": 1}))["code"] == "FORBIDDEN"
    writer = await ws_client(hub, f"/ws/sensor-data/?token={WRITE}")
    assert (await writer.request({"type": "sensor_data", "sensor_id": 1, "value": 1}, type="sensor_data_update"))["value"] == 1


def config_errors(tmp_path, main: str, secrets: str | None = None) -> list[str]:
    if secrets is not None:
        (tmp_path / "secrets.yaml").write_text(textwrap.dedent(secrets))
    path = tmp_path / "hub.yaml"
    path.write_text(textwrap.dedent(main))
    with pytest.raises(ConfigError) as error:
        load_config(path, make_plugin_host().collect_platforms())
    return [str(issue) for issue in error.value.issues]


def test_tokens_cannot_be_inline_in_the_main_file(tmp_path):
    (issue,) = config_errors(tmp_path, DEVICES + f"auth:\n  enabled: true\n  tokens:\n    - {{name: x, role: read, token: {READ}}}\n")
    assert "hub.yaml, line 9: auth.tokens: unknown key" in issue


def test_auth_on_without_a_token_source_is_an_error(tmp_path):
    (issue,) = config_errors(tmp_path, DEVICES + "auth:\n  enabled: true\n")
    assert "line 8: auth.enabled: auth is on but no tokens are configured" in issue


def test_a_bad_secrets_file_is_reported_at_its_line_without_echoing_the_token(tmp_path):
    issues = config_errors(
        tmp_path,
        DEVICES + "auth:\n  enabled: true\n  tokens_file: secrets.yaml\n",
        "tokens:\n  - {name: a, role: read, token: short-secret}\n  - {name: b, role: admin, token: 0123456789abcdefgh}\n",
    )
    assert len(issues) == 2
    assert "secrets.yaml, line 2: tokens[0].token: a token must be a string of at least 16 characters" in issues[0]
    assert "short-secret" not in issues[0]
    assert "secrets.yaml, line 3: tokens[1].role:" in issues[1] and "read" in issues[1] and "write" in issues[1]


def test_a_missing_secrets_file_or_variable_is_an_error(tmp_path, monkeypatch):
    monkeypatch.delenv("NO_SUCH_TOKENS", raising=False)
    (issue,) = config_errors(tmp_path, DEVICES + "auth:\n  enabled: true\n  tokens_file: nowhere.yaml\n")
    assert "line 9: auth.tokens_file: no such file" in issue
    (issue,) = config_errors(tmp_path, DEVICES + "auth:\n  enabled: true\n  tokens_env: NO_SUCH_TOKENS\n")
    assert "line 9: auth.tokens_env: environment variable NO_SUCH_TOKENS is not set" in issue
    monkeypatch.setenv("NO_SUCH_TOKENS", "admin:0123456789abcdefgh")
    (issue,) = config_errors(tmp_path, DEVICES + "auth:\n  enabled: true\n  tokens_env: NO_SUCH_TOKENS\n")
    assert "must be 'read:TOKEN' or 'write:TOKEN'" in issue


def test_the_same_token_twice_is_an_error(tmp_path, monkeypatch):
    monkeypatch.setenv("HUB_TOKENS", f"write:{READ}")
    issues = config_errors(tmp_path, DEVICES + "auth:\n  enabled: true\n  tokens_file: secrets.yaml\n  tokens_env: HUB_TOKENS\n", SECRETS)
    assert any("used twice" in i and READ not in i for i in issues)


@pytest.mark.gen_test
async def test_the_test_page_loads_without_a_token_and_sends_one(hub):
    # The page holds no data (it asks for a token, then connects with ?token=), so it is served openly.
    response = await tornado.httpclient.AsyncHTTPClient().fetch(f"http://127.0.0.1:{hub.port}/websocket-test/")
    page = response.body.decode()
    assert response.code == 200
    assert "'?token=' + encodeURIComponent(token)" in page
    assert "headers.Authorization = 'Bearer ' + token" in page


def test_the_secrets_example_in_security_md_works(tmp_path, monkeypatch):
    import re
    from pathlib import Path

    doc = (Path(__file__).parent.parent / "docs" / "security.md").read_text()
    blocks = [textwrap.dedent(b).strip() + "\n" for b in re.findall(r"```yaml\n(.*?)```", doc, re.S)]
    secrets = next(b for b in blocks if b.startswith("# config/secrets.yaml"))
    main = next(b for b in blocks if b.startswith("# config/smartanom.yaml"))
    (tmp_path / "secrets.yaml").write_text(secrets)
    (tmp_path / "smartanom.yaml").write_text(DEVICES + main)
    config = load_config(tmp_path / "smartanom.yaml", make_plugin_host().collect_platforms())
    assert [(t.name, t.role.value) for t in config.tokens] == [("wall-tablet", "read"), ("esp32-tank-1", "write")]

    command = re.search(r'\$ SMARTANOM_TOKENS="([^"]+)" smartanom run', doc).group(1)
    monkeypatch.setenv("SMARTANOM_TOKENS", command)
    env_block = next(b for b in blocks if "tokens_env: SMARTANOM_TOKENS" in b)
    (tmp_path / "env.yaml").write_text(DEVICES + env_block)
    config = load_config(tmp_path / "env.yaml", make_plugin_host().collect_platforms())
    assert [t.role.value for t in config.tokens] == ["read", "write"]
    assert {t.secret for t in config.tokens} == {t.secret for t in load_config(tmp_path / "smartanom.yaml", make_plugin_host().collect_platforms()).tokens}


@pytest.mark.gen_test
async def test_every_route_takes_the_token_in_the_url_and_none_is_logged(hub, ws_client):
    http = tornado.httpclient.AsyncHTTPClient()
    base = f"http://127.0.0.1:{hub.port}"
    routes = ["/api/devices", "/api/devices/1", "/api/sensors", "/api/sensors/1", "/api/plugins", "/api/health",
              "/api/openapi.json", "/api/sensors/1/readings?limit=5", "/api/sensors/1/readings?format=csv&order=asc"]
    for route in routes:
        joiner = "&" if "?" in route else "?"
        ok = await http.fetch(f"{base}{route}{joiner}token={READ}", raise_error=False)
        assert ok.code == 200, (route, ok.body)
        refused = await http.fetch(f"{base}{route}{joiner}token={WRITE}x", raise_error=False)
        assert refused.code == 401, route
    # 4xx answers that are logged as warnings: a bad parameter, an unknown id, a bad cursor, a 404 page.
    for bad in ("/api/sensors/1/readings?limit=0&token=", "/api/sensors/99/readings?token=", "/api/sensors/1/readings?cursor=x&token=", "/nowhere?token="):
        response = await http.fetch(f"{base}{bad}{WRITE}", raise_error=False)
        assert 400 <= response.code < 500, bad
    # A refused WebSocket with a wrong token and one with a right token on an unknown sensor.
    refused = await ws_client(hub, "/ws/sensor-data/?token=wrong-token-0123456789")
    assert (await refused.receive())["code"] == "UNAUTHORIZED"
    unknown = await ws_client(hub, f"/ws/sensor/99/?token={READ}")
    assert (await unknown.receive())["code"] == "UNKNOWN_SENSOR"
    csv_download = await http.fetch(f"{base}/api/sensors/1/readings?format=csv&token={READ}")
    assert csv_download.headers["Content-Type"].startswith("text/csv")


def test_the_command_logs_no_token_at_debug_level(tmp_path):
    (tmp_path / "secrets.yaml").write_text(SECRETS)
    (tmp_path / "hub.yaml").write_text(DEVICES + "auth:\n  enabled: true\n  tokens_file: secrets.yaml\n" + f"storage:\n  path: {tmp_path}/hub.db\n")
    import urllib.error
    import urllib.request

    import websocket

    with HubProcess(tmp_path / "hub.yaml", env={"SMARTANOM_LOG_LEVEL": "DEBUG"}) as hub:
        for url in (f"{hub.url}/api/health?token={READ}", f"{hub.url}/api/sensors/1/readings?limit=0&token={WRITE}", f"{hub.url}/api/devices?token={WRITE}x"):
            try:
                urllib.request.urlopen(url, timeout=10).read()
            except urllib.error.HTTPError:
                pass
        ws = websocket.create_connection(f"ws://127.0.0.1:{hub.port}/ws/sensor-data/?token={READ}x", timeout=10)
        ws.recv()
        ws.close()
        code, output = hub.stop()
    assert "Serving on" in output and "/api/health?token=REDACTED" in output  # DEBUG shows every request
    found = sorted({piece for piece in token_fragments(READ, WRITE) if piece in output})
    assert not found, f"token pieces in the log: {found}"


def test_sighup_reloads_the_tokens(tmp_path):
    import urllib.error
    import urllib.request

    (tmp_path / "secrets.yaml").write_text(SECRETS)
    (tmp_path / "hub.yaml").write_text(DEVICES + "auth:\n  enabled: true\n  tokens_file: secrets.yaml\n" + f"storage:\n  path: {tmp_path}/hub.db\n")
    fresh = EXTRA_TOKENS[2]

    def status(token):
        try:
            return urllib.request.urlopen(f"{hub.url}/api/health?token={token}", timeout=10).status
        except urllib.error.HTTPError as error:
            return error.code

    with HubProcess(tmp_path / "hub.yaml") as hub:
        assert status(READ) == 200 and status(fresh) == 401
        (tmp_path / "secrets.yaml").write_text(f"tokens:\n  - name: new-tablet\n    role: read\n    token: {fresh}\n")
        hub.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while status(fresh) != 200:
            assert time.monotonic() < deadline, hub.output
            time.sleep(0.05)
        assert status(READ) == 401
        # A broken file keeps the tokens in force and says why.
        (tmp_path / "secrets.yaml").write_text("tokens: [")
        hub.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while "Tokens not reloaded" not in hub.output:
            assert time.monotonic() < deadline, hub.output
            time.sleep(0.05)
        assert status(fresh) == 200
        code, output = hub.stop()
    assert code == 0 and "Tokens reloaded: 1 in force" in output and fresh[:8] not in output


def test_a_tokens_path_that_is_a_directory_says_so(tmp_path):
    (tmp_path / "secrets").mkdir()
    (tmp_path / "hub.yaml").write_text(DEVICES + "auth:\n  enabled: true\n  tokens_file: secrets\n")
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path / "hub.yaml", make_plugin_host().collect_platforms())
    assert "is a directory" in str(caught.value) and "auth.tokens_file" in str(caught.value)
