"""No token in the hub's logs: Tornado logs a failed request's URI (access log on
4xx/5xx, the request itself on an uncaught exception), and `?token=` is part of it."""

import logging

import pytest
import tornado.httpclient
import tornado.web

from smartanom import hookimpl

READ = "read-token-0123456789abcdef"
HUB = """
auth:
  enabled: true
  tokens_file: secrets.yaml
devices:
  - id: 1
    name: Tank
    sensors:
      - {id: 1, type: ph}
"""


class Crash(tornado.web.RequestHandler):
    def get(self):
        raise RuntimeError("the plugin's handler failed")


class Routes:
    @hookimpl
    def register_routes(self):
        return [("crash", Crash)]


@pytest.mark.gen_test
async def test_a_token_in_the_url_of_a_failed_request_is_not_logged(hub_factory, tmp_path, caplog):
    (tmp_path / "secrets.yaml").write_text(f"tokens:\n  - {{name: tablet, role: read, token: {READ}}}\n")
    hub = await hub_factory(HUB, plugins=[("routes", Routes())], entry_points=False)
    caplog.set_level(logging.INFO)
    client = tornado.httpclient.AsyncHTTPClient()
    codes = [
        (await client.fetch(f"{hub.url}{path}?token={READ}&limit=5", raise_error=False)).code
        for path in ("/api/no-such-thing", "/api/sensors/99", "/plugins/routes/crash", "/plugins/routes/nothing")
    ]
    assert codes == [404, 404, 500, 404]
    assert "the plugin's handler failed" in caplog.text  # the failure itself is still logged
    assert "GET /api/no-such-thing?token=REDACTED&limit=5" in caplog.text
    assert READ not in caplog.text
