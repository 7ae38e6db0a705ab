"""core/platform.py: what PluginContext accepts from a plugin, and what it refuses."""

import math
import time
from datetime import datetime, timezone

import pytest

from smartanom import Platform, PlatformOptions, PluginContext

HUB = """
devices:
  - id: 1
    name: Tank
    sensors: [{id: 1, type: ph}]
"""


async def _never(ctx):
    pass


def context(hub) -> PluginContext:
    platform = Platform(name="probe", run=_never)
    return PluginContext(hub, platform, PlatformOptions(platform="probe", device=1), "probe#0")


@pytest.mark.gen_test
async def test_good_readings_reach_clients_with_their_timestamps(hub_factory, ws_client):
    hub = await hub_factory(HUB)
    client = await ws_client(hub, "/ws/sensor/1/")
    ctx = context(hub)
    ctx.publish_reading(1, 6.5, 1757604600.0)
    ctx.publish_reading(1, 6.6, datetime(2025, 9, 11, 15, 30, 1, tzinfo=timezone.utc))
    ctx.publish_reading(1, 7)
    updates = [await client.receive(type="sensor_data_update") for _ in range(3)]
    assert [(u["value"], u["timestamp"][:19]) for u in updates[:2]] == [(6.5, "2025-09-11T15:30:00"), (6.6, "2025-09-11T15:30:01")]
    assert updates[2]["value"] == 7.0


@pytest.mark.gen_test
@pytest.mark.parametrize(
    "timestamp,message",
    [
        (math.nan, "finite"),
        (math.inf, "finite"),
        (time.time() * 1000, "milliseconds?"),
        (12.0, "before 2000"),
        ("2025-09-11T15:30:00Z", "seconds since the epoch"),
        (True, "seconds since the epoch"),
        (datetime(2025, 9, 11), "timezone-aware"),
    ],
)
async def test_bad_timestamps_are_refused_before_they_reach_the_bus(hub_factory, ws_client, timestamp, message):
    hub = await hub_factory(HUB)
    client = await ws_client(hub, "/ws/sensor/1/")
    with pytest.raises(ValueError, match=message.replace("?", r"\?")):
        context(hub).publish_reading(1, 6.5, timestamp)
    assert await client.nothing_within(0.2) == []
    assert hub.storage.accepted == 0


@pytest.mark.gen_test
@pytest.mark.parametrize("value", [math.nan, "6.5", None, True, 10**400])
async def test_bad_values_and_unknown_sensors_are_refused(hub_factory, value):
    hub = await hub_factory(HUB)
    with pytest.raises(ValueError):
        context(hub).publish_reading(1, value)
    with pytest.raises(ValueError, match="sensor 9 is not configured"):
        context(hub).publish_reading(9, 1.0)
    assert hub.storage.accepted == 0


@pytest.mark.gen_test
async def test_a_plugin_reading_outside_the_plausible_range_is_refused_counted_and_logged_once(hub_factory, caplog):
    hub = await hub_factory("devices: [{id: 1, name: Tank, sensors: [{id: 1, type: ph, min: 0, max: 14}]}]\n")
    ctx = context(hub)
    assert ctx.publish_reading(1, 99999) is False  # refused without an exception
    assert ctx.publish_reading(1, -3) is False
    assert ctx.publish_reading(1, 7.0) is True
    assert ctx.stats == {"refused": {"1": 2}}
    assert hub.storage.accepted == 1
    refusals = [r.getMessage() for r in caplog.records if "refused a reading" in r.getMessage()]
    assert refusals == [
        "probe#0: refused a reading: value 99999 is outside sensor 1's plausible range (0 to 14, min/max in the config "
        "or the sensor type's range); 1 refused for this sensor so far (logged at most once a minute per sensor)"
    ]


@pytest.mark.gen_test
async def test_a_plugin_is_told_when_the_hub_refuses_readings(hub_factory, tmp_path, caplog):
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the database's folder should be: storage fails")
    hub = await hub_factory(HUB + f"storage:\n  path: {blocker}/hub.db\n  max_pending: 100\n")
    ctx = context(hub)
    assert ctx.overloaded is False
    results = [ctx.publish_reading(1, 6.0 + i / 1000) for i in range(100)]
    assert results == [True] * 90 + [False] * 10 and ctx.overloaded
    assert ctx.publish_reading_threadsafe(1, 6.5) is False
    assert ctx.stats["refused_overloaded"] == 11
    assert hub.storage.accepted == 90 and hub.storage.dropped == 0
    assert len([r for r in caplog.records if "overloaded" in r.getMessage()]) == 1  # once a minute
