"""Property: no query string, however odd, gets a 5xx from any route; the hub answers and lives.

Hypothesis builds query strings from the parameters the API knows (with wild
values) and from arbitrary bytes, and sends each to every route of a live hub.
"""

import http.client
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from smartanom import api

ROUTES = [
    "/", "/websocket-test/", "/static/dashboard.js", "/static/x%00.txt", "/ws/sensor-data/", "/ws/device/1/", "/ws/sensor/1/",
    "/api/devices", "/api/devices/1", "/api/sensors", "/api/sensors/1", "/api/sensors/1/readings",
    "/api/sensors/x/readings", "/api/plugins", "/api/health", "/api/openapi.json", "/api/nowhere",
]
HUB = """
devices:
  - id: 1
    name: Tank
    sensors:
      - {id: 1, type: ph}
"""

values = st.one_of(
    st.text(max_size=40),
    st.integers().map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["1.0_99999999999999999999999999", "1_9223372036854775808", "nan_1", "1_-1", "csv", "1h", "asc", "%00", "\x00"]),
    st.binary(max_size=20).map(lambda b: b.decode("latin-1")),
)
pairs = st.lists(st.tuples(st.sampled_from([*api.READINGS_PARAMETERS, "x", ""]) | st.text(max_size=8), values), max_size=5)
query_strings = st.one_of(
    pairs.map(lambda ps: "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in ps)),
    st.binary(max_size=60).map(lambda b: quote(b, safe="=&%+;")),
)


@pytest.fixture(scope="module")
def hub_url(tmp_path_factory):
    from browser_fixtures import ThreadedHub

    folder = tmp_path_factory.mktemp("fuzz")
    (folder / "hub.yaml").write_text(HUB)
    hub = ThreadedHub(folder / "hub.yaml", folder / "hub.db")
    yield hub.port
    hub.stop()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(query=query_strings)
@example(query="cursor=1.0_99999999999999999999999999")  # the 500s, always tried
@example(query="cursor=1_9223372036854775808&bucket=1h")
def test_no_query_string_gets_a_5xx_on_any_route(hub_url, query):
    for route in ROUTES:
        conn = http.client.HTTPConnection("127.0.0.1", hub_url, timeout=10)
        try:
            conn.request("GET", f"{route}?{query}")
            status = conn.getresponse().status
        finally:
            conn.close()
        assert status < 500, (route, query, status)
