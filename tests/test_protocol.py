"""core/protocol.py: the outgoing messages built by hand for speed, checked against json.dumps."""

import json
import time

import pytest

from smartanom.events import SensorReading
from smartanom.protocol import encode_reading, format_timestamp
from smartanom.registry import Device, Sensor


@pytest.mark.parametrize(
    "device_name,unit,value",
    [
        ("Hydroponic System 1", "celsius", 25.5),
        ('Tank "B" \\ north', "µS/cm", -0.001),
        ("Gewächshaus 2", "°C", 1e-7),
        ("big", "ppm", 12345678901234.0),
    ],
)
def test_encoded_reading_is_exactly_the_spec_shape(device_name, unit, value):
    device = Device(id=3, name=device_name, offline_after=30)
    sensor = Sensor(id=7, type="ec", unit=unit, name="EC", device=device)
    reading = SensorReading(sensor, value, 1757604600.25)
    text = encode_reading(reading)
    expected = {
        "type": "sensor_data_update",
        "sensor_id": 7,
        "sensor_type": "ec",
        "device_id": 3,
        "device_name": device_name,
        "value": value,
        "unit": unit,
        "timestamp": "2025-09-11T15:30:00.250Z",
    }
    assert json.loads(text) == expected
    assert list(json.loads(text)) == list(expected)  # the spec's key order
    assert text == json.dumps(expected, separators=(",", ":"))


def _slow(epoch: float) -> str:
    seconds = int(epoch // 1)
    millis = int(round((epoch - seconds) * 1000))
    if millis == 1000:
        seconds, millis = seconds + 1, 0
    base = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    return f"{base}.{millis:03d}Z" if millis else f"{base}Z"


def test_timestamps_stay_right_when_seconds_alternate_and_round_up():
    cases = [1757604600.0, 1757604600.25, 1757604599.9996, 1757604600.999, 0.0, 1757604601.5, 1757604600.5, 946684799.9999]
    for epoch in cases * 2:  # the second pass hits the cache for some, misses for others
        assert format_timestamp(epoch) == _slow(epoch), epoch
    assert format_timestamp(1757604600.25) == "2025-09-11T15:30:00.250Z"
    assert format_timestamp(1757604599.9996) == "2025-09-11T15:30:00Z"
