"""The WebSocket API of docs/websocket.md against a real hub on a free port."""

import asyncio

import pytest

HUB = """
devices:
  - id: 1
    name: Hydroponic System 1
    sensors:
      - {id: 1, type: temperature}
      - {id: 2, type: ph}
  - id: 2
    name: Nursery
    sensors:
      - {id: 3, type: ec}
"""


@pytest.fixture
def hub(io_loop, hub_factory):
    return io_loop.run_sync(lambda: hub_factory(HUB))


@pytest.mark.gen_test
async def test_spec_shape_of_sensor_data_update(hub, ws_client):
    client = await ws_client(hub, "/ws/sensor-data/")
    update = await client.request(
        {"type": "sensor_data", "sensor_id": 1, "value": 25.5, "timestamp": "2025-09-11T15:30:00Z"},
        type="sensor_data_update",
    )
    assert update == {
        "type": "sensor_data_update",
        "sensor_id": 1,
        "sensor_type": "temperature",
        "device_id": 1,
        "device_name": "Hydroponic System 1",
        "value": 25.5,
        "unit": "celsius",
        "timestamp": "2025-09-11T15:30:00Z",
    }


@pytest.mark.gen_test
async def test_timestamp_is_stamped_by_the_hub_when_left_out(hub, ws_client):
    client = await ws_client(hub, "/ws/sensor-data/")
    update = await client.request({"type": "sensor_data", "sensor_id": 2, "value": 6.5}, type="sensor_data_update")
    assert update["timestamp"].endswith("Z") and update["timestamp"][:2] == "20"
    assert update["unit"] == "ph"


@pytest.mark.gen_test
async def test_each_stream_gets_what_it_should_exactly_once(hub, ws_client):
    everything = await ws_client(hub, "/ws/sensor-data/")
    device1 = await ws_client(hub, "/ws/device/1/")
    device2 = await ws_client(hub, "/ws/device/2/")
    sensor1 = await ws_client(hub, "/ws/sensor/1/")
    sensor3 = await ws_client(hub, "/ws/sensor/3/")
    sender = await ws_client(hub, "/ws/sensor/2/")
    for sensor_id, value in [(1, 20.0), (2, 6.1), (3, 1.4), (1, 21.0)]:
        await sender.send({"type": "sensor_data", "sensor_id": sensor_id, "value": value}) if sensor_id == 2 else None
        if sensor_id != 2:
            await everything.send({"type": "sensor_data", "sensor_id": sensor_id, "value": value})

    async def readings(client, expected: int):
        # Wait as long as it takes for the expected updates (a busy machine may be slow),
        # then listen a little longer: anything more would be a duplicate or a stray.
        got = [await client.receive(type="sensor_data_update") for _ in range(expected)]
        got += [m for m in await client.nothing_within(0.2) if m["type"] == "sensor_data_update"]
        return [(m["sensor_id"], m["value"]) for m in got]

    assert sorted(await readings(everything, 4)) == sorted([(1, 20.0), (2, 6.1), (3, 1.4), (1, 21.0)])
    assert sorted(await readings(device1, 3)) == sorted([(1, 20.0), (2, 6.1), (1, 21.0)])
    assert await readings(device2, 1) == [(3, 1.4)]
    assert await readings(sensor1, 2) == [(1, 20.0), (1, 21.0)]
    assert await readings(sensor3, 1) == [(3, 1.4)]
    assert await readings(sender, 1) == [(2, 6.1)]


@pytest.mark.gen_test
async def test_device_stream_gets_its_status_and_not_others(hub, ws_client):
    device1 = await ws_client(hub, "/ws/device/1/")
    device2 = await ws_client(hub, "/ws/device/2/")
    status = await device1.request({"type": "device_status", "status": "maintenance"}, type="device_status")
    assert status["device_id"] == 1 and status["device_name"] == "Hydroponic System 1"
    assert status["status"] == "maintenance" and status["timestamp"].endswith("Z")
    assert set(status) == {"type", "device_id", "device_name", "status", "timestamp"}
    assert await device2.nothing_within(0.3) == []


@pytest.mark.gen_test
async def test_sensor_stream_accepts_readings_without_sensor_id(hub, ws_client):
    client = await ws_client(hub, "/ws/sensor/3/")
    update = await client.request({"type": "sensor_data", "value": 1.9}, type="sensor_data_update")
    assert (update["sensor_id"], update["value"], update["unit"]) == (3, 1.9, "mS/cm")


@pytest.mark.gen_test
async def test_ping_pong(hub, ws_client):
    client = await ws_client(hub, "/ws/device/2/")
    assert await client.request({"type": "ping"}) == {"type": "pong"}


ERRORS = [
    ("/ws/sensor-data/", "not json", "INVALID_JSON"),
    ("/ws/sensor-data/", b"\x00\x01binary", "INVALID_JSON"),
    ("/ws/sensor-data/", "[1, 2]", "INVALID_MESSAGE"),
    ("/ws/sensor-data/", '"text"', "INVALID_MESSAGE"),
    ("/ws/sensor-data/", {"sensor_id": 1, "value": 1}, "INVALID_MESSAGE"),
    ("/ws/sensor-data/", {"type": "sensor_data", "value": 1}, "INVALID_MESSAGE"),
    ("/ws/sensor-data/", {"type": "sensor_data", "sensor_id": 1}, "INVALID_MESSAGE"),
    ("/ws/sensor-data/", {"type": "sensor_data", "sensor_id": "1", "value": 1}, "INVALID_MESSAGE"),
    ("/ws/sensor-data/", {"type": "sensor_data", "sensor_id": 1, "value": 1, "vaule": 2}, "INVALID_MESSAGE"),
    ("/ws/sensor-data/", {"type": "reading"}, "UNKNOWN_TYPE"),
    ("/ws/sensor-data/", {"type": "sensor_data", "sensor_id": 99, "value": 1}, "UNKNOWN_SENSOR"),
    ("/ws/device/2/", {"type": "sensor_data", "sensor_id": 1, "value": 1}, "SENSOR_NOT_ON_DEVICE"),
    ("/ws/sensor/1/", {"type": "sensor_data", "sensor_id": 2, "value": 1}, "SENSOR_NOT_ON_DEVICE"),
    ("/ws/sensor-data/", {"type": "sensor_data", "sensor_id": 1, "value": "25.5"}, "INVALID_VALUE"),
    ("/ws/sensor-data/", {"type": "sensor_data", "sensor_id": 1, "value": True}, "INVALID_VALUE"),
    ("/ws/sensor-data/", {"type": "sensor_data", "sensor_id": 1, "value": None}, "INVALID_VALUE"),
    ("/ws/sensor-data/", '{"type": "sensor_data", "sensor_id": 1, "value": NaN}', "INVALID_VALUE"),
    ("/ws/sensor-data/", '{"type": "sensor_data", "sensor_id": 1, "value": -Infinity}', "INVALID_VALUE"),
    ("/ws/sensor-data/", '{"type": "sensor_data", "sensor_id": 1, "value": 1e999}', "INVALID_VALUE"),
    ("/ws/sensor-data/", {"type": "sensor_data", "sensor_id": 1, "value": 10**400}, "INVALID_VALUE"),
    ("/ws/sensor-data/", {"type": "sensor_data", "sensor_id": 1, "value": 1, "timestamp": "yesterday"}, "INVALID_TIMESTAMP"),
    ("/ws/sensor-data/", {"type": "sensor_data", "sensor_id": 1, "value": 1, "timestamp": 1700000000}, "INVALID_TIMESTAMP"),
    ("/ws/sensor-data/", {"type": "sensor_data", "sensor_id": 1, "value": 1, "timestamp": "2999-01-01T00:00:00Z"}, "INVALID_TIMESTAMP"),
    ("/ws/device/1/", {"type": "device_status", "status": "broken"}, "INVALID_STATUS"),
    ("/ws/device/1/", {"type": "device_status"}, "INVALID_STATUS"),
    ("/ws/sensor-data/", {"type": "device_status", "status": "active", "device_id": 9}, "UNKNOWN_DEVICE"),
    ("/ws/sensor-data/", {"type": "device_status", "status": "active"}, "INVALID_MESSAGE"),
    ("/ws/sensor/1/", {"type": "device_status", "status": "active"}, "INVALID_MESSAGE"),
]


@pytest.mark.gen_test
@pytest.mark.parametrize("path,message,code", ERRORS)
async def test_bad_message_gets_its_error_and_the_connection_lives_on(hub, ws_client, path, message, code):
    client = await ws_client(hub, path)
    error = await client.request(message)
    assert error["type"] == "error" and error["code"] == code, error
    assert isinstance(error["message"], str) and error["message"]
    assert set(error) == {"type", "message", "code"}
    assert await client.request({"type": "ping"}) == {"type": "pong"}


@pytest.mark.gen_test
@pytest.mark.parametrize(
    "path,code",
    [("/ws/device/42/", "UNKNOWN_DEVICE"), ("/ws/device/abc/", "UNKNOWN_DEVICE"), ("/ws/sensor/42/", "UNKNOWN_SENSOR")],
)
async def test_unknown_id_in_url_gets_error_then_close_4004(hub, ws_client, path, code):
    client = await ws_client(hub, path)
    error = await client.receive()
    assert error["type"] == "error" and error["code"] == code
    assert await client.conn.read_message() is None
    assert client.conn.close_code == 4004


@pytest.mark.gen_test
async def test_a_rejected_reading_reaches_nobody(hub, ws_client):
    listener = await ws_client(hub, "/ws/sensor-data/")
    sender = await ws_client(hub, "/ws/sensor/1/")
    await sender.request({"type": "sensor_data", "value": "hot"}, type="error")
    assert await listener.nothing_within(0.3) == []


@pytest.mark.gen_test
async def test_foreign_browser_origin_is_refused_unless_allowed(hub_factory):
    import tornado.httpclient
    import tornado.websocket

    hub = await hub_factory(HUB + "server:\n  allowed_origins: ['http://dash.example']\n")
    url = f"ws://127.0.0.1:{hub.port}/ws/sensor-data/"
    with pytest.raises(tornado.httpclient.HTTPClientError) as refused:
        await tornado.websocket.websocket_connect(tornado.httpclient.HTTPRequest(url, headers={"Origin": "http://evil.example"}))
    assert refused.value.code == 403
    conn = await tornado.websocket.websocket_connect(tornado.httpclient.HTTPRequest(url, headers={"Origin": "http://dash.example"}))
    conn.close()


# Cases the hub core did not list: nesting, giant numbers, odd shapes, the auth message.
NESTED = '{"type": "sensor_data", "sensor_id": 1, "value": ' + "[" * 20000 + "]" * 20000 + "}"
MORE_ERRORS = [
    ("/ws/sensor-data/", NESTED, "INVALID_JSON"),  # deeper than the decoder's recursion limit
    ("/ws/sensor-data/", '{"type": "sensor_data", "sensor_id": 1, "value": ' + "[" * 500 + "]" * 500 + "}", "INVALID_VALUE"),
    ("/ws/sensor-data/", "[" * 30000, "INVALID_JSON"),
    ("/ws/sensor-data/", '{"type": "sensor_data", "sensor_id": 1, "value": ' + "9" * 5000 + "}", "INVALID_VALUE"),
    ("/ws/sensor-data/", '{"type": "sensor_data", "sensor_id": ' + "9" * 5000 + ', "value": 1}', "INVALID_VALUE"),
    ("/ws/sensor-data/", {"type": "sensor_data", "sensor_id": 10**30, "value": 1}, "UNKNOWN_SENSOR"),
    ("/ws/sensor-data/", {"type": "sensor_data", "sensor_id": 1.5, "value": 1}, "INVALID_MESSAGE"),
    ("/ws/sensor-data/", {"type": "sensor_data", "sensor_id": [1], "value": 1}, "INVALID_MESSAGE"),
    ("/ws/sensor-data/", {"type": "sensor_data", "sensor_id": 1, "value": {"v": 1}}, "INVALID_VALUE"),
    ("/ws/sensor-data/", {"type": "sensor_data", "sensor_id": 1, "value": 1, "timestamp": "2025-13-45T99:00:00Z"}, "INVALID_TIMESTAMP"),
    ("/ws/sensor-data/", {"type": "sensor_data", "sensor_id": 1, "value": 1, "timestamp": "\ud800"}, "INVALID_TIMESTAMP"),
    ("/ws/sensor-data/", {"type": "sensor_data", "sensor_id": 1, "value": 1, "timestamp": "0001-01-01T00:00:00+14:00"}, "INVALID_TIMESTAMP"),
    ("/ws/sensor-data/", {"type": "sensor_data", "sensor_id": 1, "value": 1, "timestamp": ["2025-09-11"]}, "INVALID_TIMESTAMP"),
    ("/ws/sensor-data/", {"type": "sensor_data", "sensor_id": 1, "value": 1, "timestamp": "1970-01-01T00:00:00Z"}, "INVALID_TIMESTAMP"),
    ("/ws/sensor-data/", {"type": 5}, "INVALID_MESSAGE"),
    ("/ws/sensor-data/", {"type": None}, "INVALID_MESSAGE"),
    ("/ws/sensor-data/", {}, "INVALID_MESSAGE"),
    ("/ws/sensor-data/", "", "INVALID_JSON"),
    ("/ws/sensor-data/", "null", "INVALID_MESSAGE"),
    ("/ws/sensor-data/", '{"type": "ping"} trailing', "INVALID_JSON"),
    ("/ws/sensor-data/", '{"type": "ping", "type": "sensor_data"}', "INVALID_MESSAGE"),
    ("/ws/sensor-data/", {"type": "SENSOR_DATA"}, "UNKNOWN_TYPE"),
    ("/ws/sensor-data/", {"type": "ping", "extra": 1}, "INVALID_MESSAGE"),
    ("/ws/sensor-data/", {"type": "auth"}, "INVALID_MESSAGE"),
    ("/ws/sensor-data/", {"type": "auth", "token": 123}, "INVALID_MESSAGE"),
    ("/ws/device/1/", {"type": "device_status", "status": "active", "device_id": 2}, "INVALID_MESSAGE"),
    ("/ws/device/1/", {"type": "device_status", "status": ["active"]}, "INVALID_STATUS"),
    ("/ws/sensor-data/", {"type": "device_status", "status": "active", "device_id": "1"}, "INVALID_MESSAGE"),
]


@pytest.mark.gen_test
@pytest.mark.parametrize("path,message,code", MORE_ERRORS)
async def test_more_bad_input_gets_its_error_and_the_connection_lives_on(hub, ws_client, path, message, code):
    await test_bad_message_gets_its_error_and_the_connection_lives_on(hub, ws_client, path, message, code)


def test_every_error_code_and_close_code_is_documented():
    from pathlib import Path

    from smartanom import protocol

    doc = (Path(__file__).parent.parent / "docs" / "websocket.md").read_text()
    for code in protocol.ERROR_CODES:
        assert f"`{code}`" in doc, code
    for name in dir(protocol):
        if name.startswith("CLOSE_"):
            assert f"`{getattr(protocol, name)}`" in doc, name
    assert "`1009`" in doc


@pytest.mark.gen_test
async def test_auth_message_when_auth_is_off_is_answered_with_the_write_role(hub, ws_client):
    client = await ws_client(hub, "/ws/sensor-data/")
    assert await client.request({"type": "auth", "token": "anything"}) == {"type": "authenticated", "role": "write"}


LIMITS = HUB + """
server:
  max_message_size: 1024
  rate_limit: {per_second: 5, burst: 10}
"""


@pytest.mark.gen_test
async def test_frame_over_max_size_gets_an_error_and_the_connection_lives_on(hub_factory, ws_client):
    hub = await hub_factory(LIMITS)
    client = await ws_client(hub, "/ws/sensor-data/")
    big = '{"type": "ping", "pad": "' + "x" * 2000 + '"}'
    error = await client.request(big)
    assert error["type"] == "error" and error["code"] == "MESSAGE_TOO_BIG", error
    # Multi-byte characters count in bytes, as on the wire: 400 characters, 1200 bytes.
    error = await client.request('{"type": "ping", "pad": "' + "€" * 400 + '"}')
    assert error["code"] == "MESSAGE_TOO_BIG"
    assert await client.request({"type": "ping"}) == {"type": "pong"}


@pytest.mark.gen_test
async def test_frame_over_four_times_max_size_closes_with_1009_and_others_carry_on(hub_factory, ws_client):
    hub = await hub_factory(LIMITS)
    bystander = await ws_client(hub, "/ws/sensor-data/")
    client = await ws_client(hub, "/ws/sensor-data/")
    try:
        await client.send('{"type": "ping", "pad": "' + "x" * 5000 + '"}')
    except Exception:
        pass  # the hub may have closed before the whole frame went out
    assert await client.conn.read_message() is None  # closed, without reading the frame
    assert client.conn.close_code in (1009, None)  # 1009 unless the reset beat the close frame
    update = await bystander.request({"type": "sensor_data", "sensor_id": 1, "value": 3.5}, type="sensor_data_update")
    assert update["value"] == 3.5


@pytest.mark.gen_test
async def test_a_flood_is_rate_limited_and_the_connection_recovers(hub_factory, ws_client):
    hub = await hub_factory(LIMITS)
    client = await ws_client(hub, "/ws/sensor-data/")
    for _ in range(40):
        await client.send({"type": "ping"})
    replies = [await client.receive() for _ in range(40)]
    pongs = [r for r in replies if r["type"] == "pong"]
    limited = [r for r in replies if r.get("code") == "RATE_LIMITED"]
    assert len(pongs) + len(limited) == 40
    assert 10 <= len(pongs) < 25 and len(limited) >= 15  # burst 10, then 5 per second
    # The bucket refills (5 per second): a ping is answered again within a few tries.
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 5
    while (reply := await client.request({"type": "ping"})) != {"type": "pong"}:
        assert reply.get("code") == "RATE_LIMITED" and loop.time() < deadline, reply
        limited.append(reply)
        await asyncio.sleep(0.05)
    assert hub.fanout.stats.rate_limited == len(limited)


@pytest.mark.gen_test
async def test_rate_limit_can_be_turned_off(hub_factory, ws_client):
    hub = await hub_factory(HUB + "server:\n  rate_limit: null\n")
    client = await ws_client(hub, "/ws/sensor-data/")
    for _ in range(500):
        await client.send({"type": "ping"})
    replies = [await client.receive() for _ in range(500)]
    assert all(r == {"type": "pong"} for r in replies)


@pytest.mark.gen_test
async def test_same_origin_and_originless_clients_are_accepted(hub):
    import tornado.httpclient
    import tornado.websocket

    url = f"ws://127.0.0.1:{hub.port}/ws/sensor-data/"
    same = await tornado.websocket.websocket_connect(tornado.httpclient.HTTPRequest(url, headers={"Origin": f"http://127.0.0.1:{hub.port}"}))
    same.close()
    with pytest.raises(tornado.httpclient.HTTPClientError) as refused:
        await tornado.websocket.websocket_connect(tornado.httpclient.HTTPRequest(url, headers={"Origin": f"http://127.0.0.1:{hub.port + 1}"}))
    assert refused.value.code == 403
    plain = await tornado.websocket.websocket_connect(url)  # non-browser clients send no Origin
    plain.close()


@pytest.mark.gen_test
async def test_refused_messages_are_logged_once_a_minute_per_connection_with_the_client(hub, ws_client, caplog):
    import logging

    client = await ws_client(hub, "/ws/sensor-data/")
    with caplog.at_level(logging.WARNING, logger="smartanom.websocket"):
        for _ in range(50):
            await client.request("not json")
    lines = [r.getMessage() for r in caplog.records if "refused on this connection" in r.getMessage()]
    assert len(lines) == 1, lines
    assert lines[0].startswith("Client 127.0.0.1 (anonymous) on /ws/sensor-data/: INVALID_JSON")


@pytest.mark.gen_test
async def test_a_reading_outside_the_configured_plausible_range_is_refused(hub_factory, ws_client):
    hub = await hub_factory(
        "devices: [{id: 1, name: Tank, sensors: [{id: 1, type: ph, min: 0, max: 14}, {id: 2, type: ec}]}]\n"
    )
    listener = await ws_client(hub, "/ws/sensor-data/")
    sender = await ws_client(hub, "/ws/device/1/")
    for value in (-1e308, 14.01, -0.5):
        error = await sender.request({"type": "sensor_data", "sensor_id": 1, "value": value})
        assert error["code"] == "INVALID_VALUE" and "plausible range (0 to 14" in error["message"]
    assert await listener.nothing_within(0.3) == []
    # The bounds themselves are plausible, and a sensor without min/max takes anything finite.
    assert (await sender.request({"type": "sensor_data", "sensor_id": 1, "value": 14}, type="sensor_data_update"))["value"] == 14.0
    assert (await sender.request({"type": "sensor_data", "sensor_id": 2, "value": -1e308}, type="sensor_data_update"))["sensor_id"] == 2
    assert hub.storage.accepted == 2
