"""/api/openapi.json stays true: every API route is described, and every described
request, made for real, answers with a documented status and a body matching its schema."""

import asyncio
import json
import re

import jsonschema
import pytest
from tornado.httpclient import AsyncHTTPClient

from smartanom import api
from smartanom.web import make_app

HUB = """
storage:
  flush_interval: 0.05
devices:
  - id: 1
    name: Tank
    sensors:
      - {id: 1, type: ph}
"""


@pytest.fixture
def hub(io_loop, hub_factory):
    return io_loop.run_sync(lambda: hub_factory(HUB))


async def fetch(hub, path):
    response = await AsyncHTTPClient().fetch(hub.url + path, raise_error=False)
    return response.code, response.headers.get("Content-Type", ""), response.body


def route_templates(hub) -> set[str]:
    """The app's /api routes, written as OpenAPI path templates."""
    templates = set()
    for rule in make_app(hub).wildcard_router.rules:
        pattern = rule.matcher.regex.pattern.rstrip("$")
        if not pattern.startswith("/api/") or rule.target is api.NotFoundHandler:
            continue
        names = iter(["{id}"] * 3)
        templates.add(re.sub(r"\(\[\^/\]\+\)", lambda m: next(names), pattern).removesuffix("/?").replace("\\.", "."))
    return templates


def validator(spec, schema):
    return jsonschema.Draft202012Validator(dict(schema, components=spec["components"]))


def resolve(spec, node):
    ref = node.get("$ref")
    return resolve(spec, spec["components"]["responses"][ref.rsplit("/", 1)[1]]) if ref else node


@pytest.mark.gen_test
async def test_every_api_route_is_described_and_nothing_else(hub):
    code, _, body = await fetch(hub, "/api/openapi.json")
    spec = json.loads(body)
    described = {re.sub(r"\{[a-z_]+\}", "{id}", p) for p in spec["paths"]}
    assert described == route_templates(hub)
    documented = [p["name"] for p in spec["paths"]["/api/sensors/{sensor_id}/readings"]["get"]["parameters"] if p["in"] == "query"]
    assert documented == list(api.READINGS_PARAMETERS)


@pytest.mark.gen_test
async def test_every_described_request_answers_as_described(hub):
    hub.accept_reading(hub.registry.sensor(1), 6.2, None)
    while hub.storage.stored < 1:  # so that readings and buckets come back non-empty
        await asyncio.sleep(0.02)
    _, _, body = await fetch(hub, "/api/openapi.json")
    spec = json.loads(body)
    jsonschema.Draft202012Validator.check_schema(spec["components"]["schemas"]["ReadingsPage"])
    checked = 0
    for path, item in spec["paths"].items():
        if "get" not in item:
            continue  # changes: tests/test_calibration_api.py, tests/test_alerts_api.py, tests/test_control_api.py
        operation = item["get"]
        responses = operation["responses"]
        concrete = re.sub(r"\{[a-z_]+\}", "1", path)
        requests = [(concrete, "200")]
        if "404" in responses:
            requests.append((re.sub(r"\{[a-z_]+\}", "999", path), "404"))
        for parameter in operation.get("parameters", []):
            if parameter["in"] != "query":
                continue
            if parameter["name"] == "token":
                continue  # auth is off on this hub: any token is ignored (tests/test_auth.py)
            for value in parameter["schema"].get("enum", []):
                requests.append((f"{concrete}?{parameter['name']}={value}", "200"))
            requests.append((f"{concrete}?{parameter['name']}=%20nonsense", "400"))
        for url, status in requests:
            code, content_type, body = await fetch(hub, url)
            assert str(code) == status, (url, body)
            media = content_type.split(";")[0]
            content = resolve(spec, responses[status])["content"]
            assert media in content, (url, content_type)
            if media == "application/json":
                validator(spec, content[media]["schema"]).validate(json.loads(body))
            checked += 1
    assert checked > 20
