"""A plugin's routes stay under its own prefix, whatever its patterns say."""

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
