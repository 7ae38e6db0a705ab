"""Property: whatever a client sends, it gets a broadcast or a documented error, and the hub lives.

Hypothesis generates frames (arbitrary text and bytes, arbitrary JSON, and
messages that look almost right) and sends each to one live hub over one
connection. After each, a sentinel reading marks the end of the answer: what
came before it must be exactly one answer (an error whose code is documented
in protocol.ERROR_CODES, a sensor_data_update, a device_status, a pong or an
authenticated), and nothing may be logged as an error by the hub.
"""

import itertools
import json
import logging

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smartanom.protocol import ERROR_CODES

HUB = """
devices:
  - id: 1
    name: Tank
    offline_after: 3600
    sensors:
      - {id: 1, type: ph}
      - {id: 2, type: ec}
  - id: 2
    name: Nursery
    offline_after: 3600
    sensors:
      - {id: 3, type: temperature}
server:
  rate_limit: null
  max_message_size: 4096
"""

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
timestamps = st.one_of(
    st.datetimes().map(lambda d: d.isoformat()),
    st.datetimes().map(lambda d: d.isoformat() + "Z"),
    st.text(max_size=30),
    json_values,
)
near_messages = st.fixed_dictionaries(
    {"type": st.sampled_from(["sensor_data", "device_status", "ping", "auth", "reading", ""]) | st.text(max_size=12)},
    optional={
        "sensor_id": st.integers(-2, 5) | json_values,
        "device_id": st.integers(-2, 4) | json_values,
        "value": st.floats(allow_nan=True, allow_infinity=True) | st.integers() | json_values,
        "timestamp": timestamps,
        "status": st.sampled_from(["active", "inactive", "maintenance"]) | json_values,
        "token": st.text(max_size=20) | json_values,
        "extra": json_values,
    },
)
frames = st.one_of(
    near_messages.map(json.dumps),  # json.dumps writes NaN and Infinity as the bare words
    json_values.map(json.dumps),
    st.text(max_size=200),
    st.binary(max_size=64),
    st.text(alphabet="[]{}\",:0123456789.eE-+ ", max_size=300),
)

ANSWERS = {"error", "sensor_data_update", "device_status", "pong", "authenticated"}


@pytest.fixture
def live(io_loop, hub_factory, ws_client, caplog):
    caplog.set_level(logging.ERROR)
    hub = io_loop.run_sync(lambda: hub_factory(HUB))
    clients = {path: io_loop.run_sync(lambda: ws_client(hub, path)) for path in ("/ws/sensor-data/", "/ws/device/1/", "/ws/sensor/1/")}
    return hub, clients, itertools.count(), set()


async def exchange(client, frame, sentinel: float, sentinels: set) -> list[dict]:
    await client.send(frame)
    await client.send({"type": "sensor_data", "sensor_id": 1, "value": sentinel})
    got = []
    while True:
        message = await client.receive(timeout=5)
        if message.get("type") == "sensor_data_update" and message.get("value") in sentinels:
            if message["value"] == sentinel:
                return got
            continue  # another stream's sentinel: sensor 1 is on all three streams
        got.append(message)


async def drain(client, sentinel: float) -> None:
    """Read what another stream got up to `sentinel`'s broadcast: a frame that was a valid
    reading reached all three streams, and must not count as the next frame's answer."""
    while not ((message := await client.receive(timeout=5)).get("type") == "sensor_data_update" and message.get("value") == sentinel):
        pass


@settings(max_examples=500, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(frame=frames, path=st.sampled_from(["/ws/sensor-data/", "/ws/device/1/", "/ws/sensor/1/"]))
def test_every_frame_gets_one_answer_and_the_hub_survives(io_loop, live, caplog, frame, path):
    hub, clients, counter, sentinels = live
    sentinel = 1e12 + next(counter)
    sentinels.add(sentinel)
    got = io_loop.run_sync(lambda: exchange(clients[path], frame, sentinel, sentinels), timeout=15)
    for other in set(clients) - {path}:
        io_loop.run_sync(lambda: drain(clients[other], sentinel), timeout=15)
    assert got, f"no answer to {frame!r}"
    assert all(m.get("type") in ANSWERS for m in got), got
    for m in got:
        if m["type"] == "error":
            assert m["code"] in ERROR_CODES and m["message"], m
    primary = [m for m in got if m["type"] != "device_status"]
    # A device_status may ride along (the device came back to life), but only one real answer.
    assert len(primary) <= 1, got
    # The sentinel's broadcast has just shown the hub still takes readings; nothing went wrong inside it.
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, [r.getMessage() for r in errors]
