"""plugins/simulated: believable ranges, day/night, reproducibility, dropouts, end to end."""

import json
import statistics

import pytest
import tornado.httpclient

from smartanom.registry import SENSOR_TYPES
from smartanom.builtin.simulated.model import Simulator

RANGES = {
    "water_temperature": (20, 30),
    "temperature": (20, 30),
    "air_temperature": (18, 32),
    "humidity": (60, 80),
    "ph": (5.5, 7.5),
    "ec": (1.0, 2.5),
    "tds": (500, 1500),
    "water_level": (10, 50),
    "light": (0, 20000),
    "turbidity": (0, 40),
    "ppfd": (0, 1000),
    "vpd": (0.4, 1.6),
    "dli": (5, 30),
}
DAY = 86400.0
MIDNIGHT = 1_700_000_000 - 1_700_000_000 % 86400  # a UTC midnight


def run_days(seed, days=3, step=60.0):
    sensors = list(enumerate(SENSOR_TYPES, start=1))
    sim = Simulator(sensors, seed=seed)
    series = {stype: [] for _, stype in sensors}
    t = MIDNIGHT
    while t < MIDNIGHT + days * DAY:
        for sid, value in sim.sample(t):
            series[sensors[sid - 1][1]].append((t, value))
        t += step
    return series


def test_every_type_stays_in_its_realistic_range_and_moves():
    series = run_days(seed=1)
    assert set(series) == set(RANGES)
    for stype, points in series.items():
        values = [v for _, v in points]
        low, high = RANGES[stype]
        assert low <= min(values) and max(values) <= high, stype
        assert statistics.pstdev(values) > 0, f"{stype} is constant"


def test_not_uniform_noise_consecutive_samples_are_close():
    series = run_days(seed=2, days=1)
    for stype in ("ph", "ec", "water_temperature", "humidity"):
        values = [v for _, v in series[stype]]
        low, high = RANGES[stype]
        steps = [abs(b - a) for a, b in zip(values, values[1:])]
        assert statistics.mean(steps) < 0.05 * (high - low), stype


def test_day_night_cycle():
    series = run_days(seed=3, days=2)
    hour = lambda t: (t % DAY) / 3600  # noqa: E731
    light_night = [v for t, v in series["light"] if hour(t) < 5]
    light_day = [v for t, v in series["light"] if 11 <= hour(t) <= 15]
    assert max(light_night) == 0 and min(light_day) > 10000
    air_afternoon = statistics.mean(v for t, v in series["air_temperature"] if 14 <= hour(t) <= 16)
    air_early = statistics.mean(v for t, v in series["air_temperature"] if 2 <= hour(t) <= 4)
    assert air_afternoon > air_early + 2


def test_same_seed_same_readings_other_seed_other_readings():
    assert run_days(seed=42, days=1) == run_days(seed=42, days=1)
    assert run_days(seed=42, days=1)["ph"] != run_days(seed=43, days=1)["ph"]


HUB = """
devices:
  - id: 1
    name: Tank
    offline_after: 1
    sensors: [{id: 1, type: ph}, {id: 2, type: ec}, {id: 3, type: water_temperature}]
plugins:
  - platform: simulated
    device: 1
    interval: 0.1
    seed: 5
    sensors: [1, 2]
"""


@pytest.mark.gen_test(timeout=20)
async def test_simulator_feeds_a_websocket_client(hub_factory, ws_client):
    hub = await hub_factory(HUB)
    client = await ws_client(hub, "/ws/device/1/")
    seen = set()
    while len(seen) < 2:
        update = await client.receive(type="sensor_data_update")
        seen.add(update["sensor_id"])
        assert update["device_name"] == "Tank"
        low, high = RANGES[update["sensor_type"]]
        assert low <= update["value"] <= high
    assert seen == {1, 2}  # sensor 3 was not listed in `sensors:`


@pytest.mark.gen_test(timeout=30)
async def test_dropout_makes_the_device_inactive_then_active(hub_factory, ws_client):
    hub = await hub_factory(HUB + "    dropout: {every: 0.5, duration: 1.5}\n")
    client = await ws_client(hub, "/ws/device/1/")
    statuses = []
    while statuses[-2:] != ["inactive", "active"]:
        statuses.append((await client.receive(type="device_status", timeout=10))["status"])
    assert "inactive" in statuses


@pytest.mark.gen_test(timeout=15)
async def test_a_sensor_whose_values_leave_its_range_is_refused_and_the_others_keep_flowing(hub_factory, ws_client):
    # Water temperature (20-30 C) can never lie within 0..1: every one of its readings is
    # refused. It used to raise out of publish_reading, so the simulator crash-looped and
    # the in-range sensor of the same instance got nothing.
    hub = await hub_factory(
        """
        devices:
          - id: 1
            name: Tank
            sensors:
              - {id: 1, type: water_temperature, min: 0, max: 1}
              - {id: 2, type: ph}
        plugins:
          - {platform: simulated, device: 1, interval: 0.02, seed: 3}
        """
    )
    client = await ws_client(hub, "/ws/sensor/2/")
    for _ in range(5):
        assert (await client.receive(type="sensor_data_update"))["sensor_id"] == 2
    response = await tornado.httpclient.AsyncHTTPClient().fetch(f"{hub.url}/api/plugins")
    (instance,) = json.loads(response.body)["instances"]
    assert instance["state"] == "running" and instance["restarts"] == 0 and instance["last_error"] is None
    assert instance["stats"]["refused"]["1"] >= 5 and "2" not in instance["stats"]["refused"]
