"""A plugin's routes stay under its own prefix, whatever its patterns say."""

import json

import pytest
import tornado.httpclient
import tornado.web

from smartanom import hookimpl

HUB = """
devices:
  - id: 1
    name: Tank
    sensors:
      - {id: 1, type: ph}
"""


def answering(text):
    class Answer(tornado.web.RequestHandler):
        def get(self, *groups):
            self.finish({"from": text, "groups": list(groups)})

    return Answer


class Greedy:
    @hookimpl
    def register_routes(self):
        # An alternation must not reach outside /plugins/greedy/ (here: another plugin's page).
        return [(r"x|/plugins/quiet/page", answering("greedy")), (r"^/anchored/(\d+)$", answering("anchored"))]


class Quiet:
    @hookimpl
    def register_routes(self):
        return [("page", answering("quiet"))]


async def get(url):
    response = await tornado.httpclient.AsyncHTTPClient().fetch(url, raise_error=False)
    return response.code, response.body


@pytest.mark.gen_test
async def test_a_pattern_cannot_reach_outside_its_plugins_prefix(hub_factory):
    # Registered last, Greedy's hooks are called first, so its routes come first.
    hub = await hub_factory(HUB, plugins=[("quiet", Quiet()), ("greedy", Greedy())], entry_points=False)
    assert await get(f"{hub.url}/plugins/quiet/page") == (200, b'{"from": "quiet", "groups": []}')
    assert await get(f"{hub.url}/plugins/greedy/x") == (200, b'{"from": "greedy", "groups": []}')


@pytest.mark.gen_test
async def test_a_pattern_written_with_anchors_and_a_leading_slash_works(hub_factory):
    hub = await hub_factory(HUB, plugins=[("greedy", Greedy())], entry_points=False)
    assert await get(f"{hub.url}/plugins/greedy/anchored/7") == (200, b'{"from": "anchored", "groups": ["7"]}')


class Failing:
    @hookimpl
    def register_routes(self):
        class Boom(tornado.web.RequestHandler):
            def get(self):
                raise RuntimeError("the exporter's cache is gone")

        class Missing(tornado.web.RequestHandler):
            def get(self):
                raise tornado.web.HTTPError(404, "no tank %s", "9")

        class OwnErrors(tornado.web.RequestHandler):
            def get(self):
                raise RuntimeError("handled by the plugin's own write_error")

            def write_error(self, status_code, **kwargs):
                self.finish(f"plugin's own page {status_code}")

        return [("boom", Boom), ("missing", Missing), ("own", OwnErrors)]


@pytest.mark.gen_test
async def test_a_route_that_raises_answers_json_and_is_reported_against_its_plugin(hub_factory, caplog, monkeypatch):
    token = "r" * 32
    monkeypatch.setenv("SMARTANOM_TEST_TOKENS", f"read:{token}")
    auth = "auth:\n  enabled: true\n  tokens_env: SMARTANOM_TEST_TOKENS\n"
    hub = await hub_factory(HUB + auth, plugins=[("failing", Failing())], entry_points=False)
    code, body = await get(f"{hub.url}/plugins/failing/boom?token={token}")
    assert code == 500
    assert json.loads(body) == {"error": {"code": "INTERNAL_ERROR", "message": "internal error in a plugin's route; see the hub's log"}}
    code, body = await get(f"{hub.url}/plugins/failing/missing?token={token}")
    assert (code, json.loads(body)) == (404, {"error": {"code": "NOT_FOUND", "message": "no tank 9"}})
    assert await get(f"{hub.url}/plugins/failing/own?token={token}") == (500, b"plugin's own page 500")
    failures = [r for r in caplog.records if "raised RuntimeError" in r.getMessage()]
    assert failures[0].name == "smartanom.plugins" and failures[0].exc_info
    assert "Plugin failing route GET /plugins/failing/boom raised RuntimeError: the exporter's cache is gone" in failures[0].getMessage()
    assert hub.plugins.records["failing"].errors[0] == "route GET /plugins/failing/boom raised RuntimeError: the exporter's cache is gone"
    assert token not in caplog.text
