"""core/protocol.py: the outgoing timestamp text (cached per second for bursts)."""

import time

from core.protocol import format_timestamp


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
