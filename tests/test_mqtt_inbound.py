"""Payloads of MQTT devices -> numbers (plugins/mqtt/inbound.py)."""

import json

import pytest

from smartanom.builtin.mqtt.inbound import PayloadError, Route

PLAIN = Route("esp/sensor/t/state", 1)
TASMOTA = Route("tele/x/SENSOR", 1, ("AM2301", "Temperature"))
EDGE = Route("smartanom/edge/sensor/1/state", 1, ("value",), ("timestamp",))


@pytest.mark.parametrize("payload, value", [(b"23.4", 23.4), (b" 7 \n", 7.0), (b"-0.5", -0.5), (b"1e3", 1000.0)])
def test_plain_numbers(payload, value):
    assert PLAIN.extract(payload) == (value, None)


def test_json_paths_with_list_indexes_and_numeric_strings():
    assert TASMOTA.extract(json.dumps({"AM2301": {"Temperature": 21.5}}).encode()) == (21.5, None)
    listed = Route("t", 1, ("readings", "1", "v"))
    assert listed.extract(b'{"readings": [{"v": 1}, {"v": "2.5"}]}') == (2.5, None)


def test_edge_payload_keeps_the_edges_timestamp():
    value, timestamp = EDGE.extract(b'{"sensor_id": 1, "value": 6.2, "timestamp": "2025-09-11T15:30:00.250Z"}')
    assert (value, timestamp) == (6.2, 1757604600.25)


@pytest.mark.parametrize(
    "route, payload, message",
    [
        (PLAIN, b"nan", "not a finite number"),
        (PLAIN, b"inf", "not a finite number"),
        (PLAIN, b"ON", "payload is not a number: 'ON'"),
        (PLAIN, b"\xff", "not UTF-8"),
        (TASMOTA, b"{oops", "not JSON"),
        (TASMOTA, b'{"AM2301": {}}', "no 'AM2301.Temperature'"),
        (TASMOTA, b'{"AM2301": {"Temperature": true}}', "boolean"),
        (TASMOTA, b'{"AM2301": {"Temperature": [1]}}', "not a number: [1]"),
        (TASMOTA, b'{"AM2301": 5}', "no 'AM2301.Temperature'"),
        (EDGE, b'{"value": 1, "timestamp": "yesterday"}', "timestamp"),
        (EDGE, b'{"value": 1, "timestamp": 17}', "ISO 8601"),
    ],
)
def test_bad_payloads_say_what_is_wrong(route, payload, message):
    with pytest.raises(PayloadError) as caught:
        route.extract(payload)
    assert message in str(caught.value)


def test_a_local_time_shown_twice_when_clocks_go_back_is_the_recent_one():
    # Europe/Madrid on 2026-10-25: 03:00 CEST becomes 02:00 CET, so a Tasmota
    # "Time" of 02:30 happens at 00:30Z and again at 01:30Z. A message arriving
    # at 01:30:05Z means the second; it used to be stamped an hour early.
    from datetime import datetime, timezone

    from smartanom.builtin.mqtt.messages import parse_timestamp

    def utc(text):
        return datetime.fromisoformat(text).replace(tzinfo=timezone.utc).timestamp()

    local = "2026-10-25T02:30:00"
    assert parse_timestamp(local, "Europe/Madrid", now=utc("2026-10-25T00:30:05")) == utc("2026-10-25T00:30:00")
    assert parse_timestamp(local, "Europe/Madrid", now=utc("2026-10-25T01:30:05")) == utc("2026-10-25T01:30:00")
    # Unambiguous times are not moved, whatever the arrival time.
    assert parse_timestamp("2026-10-25T04:00:00", "Europe/Madrid", now=utc("2026-10-25T01:30:05")) == utc("2026-10-25T03:00:00")
    assert parse_timestamp("2026-10-25T02:30:00Z", "Europe/Madrid", now=0) == utc("2026-10-25T02:30:00")
