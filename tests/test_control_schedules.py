"""Schedules and threshold rules on simulated time, in the hub's time zone."""

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from control_harness import Rig
from smartanom.builtin.simulated.tank import TankSettings

AMS = ZoneInfo("Europe/Amsterdam")
HOUR, DAY = 3600.0, 86400.0
LIGHTS = [{"id": "lights", "name": "Grow lights"}]


def local(ts: float) -> str:
    return datetime.fromtimestamp(ts, AMS).strftime("%m-%d %H:%M")


def switches(rig, output_id, source):
    return [(local(e.timestamp), e.on) for e in rig.events if e.output.id == output_id and e.source == source]


@pytest.mark.gen_test(timeout=60)
@pytest.mark.parametrize("day", ["2026-03-28", "2026-10-24"])  # spring forward on the 29th, fall back on the 25th
async def test_lights_follow_their_schedule_across_a_dst_change(tmp_path, day):
    start = datetime.fromisoformat(day).replace(tzinfo=AMS).timestamp()
    control = {"timezone": "Europe/Amsterdam", "period": 30.0,
               "schedules": [{"output": "lights", "windows": [{"start": "06:00", "end": "22:00"}]}]}
    rig = Rig(tmp_path, control, LIGHTS, start=start, read_every=3600)
    await rig.start()
    await rig.run_for(3 * DAY)
    await rig.stop()
    d = int(day[-2:])
    month = day[5:7]
    expected = []
    for n in range(3):
        expected += [(f"{month}-{d + n:02d} 06:00", True), (f"{month}-{d + n:02d} 22:00", False)]
    assert switches(rig, "lights", "schedule") == expected
    # The DST day really had 23 or 25 hours between the two on-switches around it.
    ons = [e.timestamp for e in rig.events if e.source == "schedule" and e.on]
    assert {round((b - a) / HOUR) for a, b in zip(ons, ons[1:])} == ({23, 24} if month == "03" else {24, 25})


@pytest.mark.gen_test(timeout=60)
async def test_a_cycle_keeps_to_local_time_across_spring_forward(tmp_path):
    start = datetime(2026, 3, 29, 0, 0, tzinfo=AMS).timestamp()
    control = {"timezone": "Europe/Amsterdam", "period": 30.0,
               "schedules": [{"output": "pump", "cycle": {"on_minutes": 15, "off_minutes": 45}}]}
    rig = Rig(tmp_path, control, [{"id": "pump", "name": "Circulation"}], start=start, read_every=3600)
    await rig.start()
    await rig.run_for(6 * HOUR)
    await rig.stop()
    got = switches(rig, "pump", "schedule")
    # 02:00-03:00 does not exist that night; after it the cycle still starts on the local hour.
    assert got[:6] == [("03-29 00:00", True), ("03-29 00:15", False), ("03-29 01:00", True),
                       ("03-29 01:15", False), ("03-29 03:00", True), ("03-29 03:15", False)]
    assert all(t.endswith((":00", ":15")) for t, _ in got)


@pytest.mark.gen_test(timeout=60)
async def test_a_restart_inside_the_window_turns_lights_on_from_the_schedule(tmp_path):
    noon = datetime(2026, 6, 1, 12, 0, tzinfo=AMS).timestamp()
    control = {"timezone": "Europe/Amsterdam", "schedules": [{"output": "lights", "windows": [{"start": "06:00", "end": "22:00"}]}]}
    rig = Rig(tmp_path, control, LIGHTS, start=noon)
    await rig.start()
    await rig.run_for(60)
    await rig.stop()
    lights = [(e.source, e.on) for e in rig.events if e.output.id == "lights"]
    assert lights == [("start", False), ("schedule", True), ("safe", False)]


@pytest.mark.gen_test(timeout=60)
async def test_top_off_with_hysteresis(tmp_path):
    control = {"period": 10.0, "thresholds": [{"output": "valve", "sensor": 2, "on_below": 20.0, "off_above": 25.0}]}
    settings = TankSettings(level_cm=21.0, evaporation_cm_per_hour=2.0, topoff_cm_per_s=0.01, noise=0.0)
    rig = Rig(tmp_path, control, [{"id": "valve", "name": "Top-off valve", "role": "topoff"}], tank=settings)
    await rig.start()
    await rig.run_for(HOUR)  # 21 -> 19 cm: opens under 20, fills to 25, shuts
    await rig.stop()
    valve = [(e.on, e.reason) for e in rig.events if e.source == "rule"]
    assert [on for on, _ in valve] == [True, False]
    assert "= 19.9" in valve[0][1] or "= 19.8" in valve[0][1]
    assert "= 25" in valve[1][1]  # shut at the first reading at or over 25
    assert 20.0 < rig.tank.level < 25.5  # and has evaporated a little since


@pytest.mark.gen_test(timeout=60)
async def test_a_stale_level_sensor_shuts_the_valve(tmp_path):
    control = {"period": 10.0, "thresholds": [{"output": "valve", "sensor": 2, "on_below": 20.0, "off_above": 25.0, "stale_after": 60}]}
    rig = Rig(tmp_path, control, [{"id": "valve", "name": "Top-off", "role": "topoff"}], tank=TankSettings(level_cm=10.0, topoff_cm_per_s=0.0001))
    await rig.start()
    await rig.run_for(60)
    assert rig.outputs.get("valve").on is True
    rig.ph_sensor = "silent"
    await rig.run_for(90)
    assert rig.outputs.get("valve").on is False
    await rig.stop()
    assert "no reading within 60 s" in [e.reason for e in rig.events if e.source == "rule"][-1]


@pytest.mark.gen_test(timeout=60)
async def test_a_level_probe_stuck_low_shuts_the_valve_after_max_on(tmp_path):
    control = {"period": 10.0, "thresholds": [{"output": "valve", "sensor": 2, "on_below": 20.0, "off_above": 25.0, "max_on": 600}]}
    settings = TankSettings(level_cm=19.0, evaporation_cm_per_hour=0.0, topoff_cm_per_s=0.01, noise=0.0)
    rig = Rig(tmp_path, control, [{"id": "valve", "name": "Top-off", "role": "topoff"}], tank=settings)
    rig.level_sensor = 19.0  # fouled probe: still reporting, never moves
    await rig.start()
    await rig.run_for(590)
    assert rig.outputs.get("valve").on is True
    await rig.run_for(30)
    assert rig.outputs.get("valve").on is False  # tripped within one period of max_on
    await rig.run_for(2 * HOUR)
    assert rig.outputs.get("valve").on is False  # and does not reopen on the stuck reading
    assert rig.tank.level < 25.5
    rig.level_sensor = 25.0  # the probe is cleaned and reads the level again: re-armed
    await rig.run_for(30)
    rig.level_sensor = 19.0
    await rig.run_for(30)
    assert rig.outputs.get("valve").on is True
    await rig.stop()
    stops = [e for e in rig.events if e.source == "rule" and not e.on]
    assert "max_on: on for 600 s (limit 600 s)" in stops[0].reason and "never reached >= 25" in stops[0].reason
    recorded = [r["reason"] for r in rig.journal.actuations(output_id="valve")]
    assert any(r.startswith("max_on:") for r in recorded)


@pytest.mark.gen_test(timeout=60)
async def test_a_manual_override_rearms_a_tripped_valve(tmp_path):
    control = {"period": 10.0, "thresholds": [{"output": "valve", "sensor": 2, "on_below": 20.0, "off_above": 25.0, "max_on": 300}]}
    rig = Rig(tmp_path, control, [{"id": "valve", "name": "Top-off", "role": "topoff"}], tank=TankSettings(level_cm=10.0, topoff_cm_per_s=0.0001))
    rig.level_sensor = 10.0
    await rig.start()
    await rig.run_for(400)
    assert rig.outputs.get("valve").on is False
    await rig.control.override("valve", False, 60, "ann")
    await rig.run_for(70)
    assert rig.outputs.get("valve").on is True  # re-armed: another max_on from now
    await rig.run_for(310)
    assert rig.outputs.get("valve").on is False
    await rig.stop()


def test_top_off_rules_get_a_default_max_on_and_chillers_none():
    from smartanom.control.config import ThresholdConfig
    assert ThresholdConfig(output="v", sensor=1, on_below=1, off_above=2).max_on == 1800
    assert ThresholdConfig(output="c", sensor=1, on_above=25, off_below=24).max_on is None


@pytest.mark.gen_test(timeout=60)
async def test_override_beats_the_schedule_until_it_expires(tmp_path):
    noon = datetime(2026, 6, 1, 12, 0, tzinfo=AMS).timestamp()
    control = {"timezone": "Europe/Amsterdam", "schedules": [{"output": "lights", "windows": [{"start": "06:00", "end": "22:00"}]}]}
    rig = Rig(tmp_path, control, LIGHTS, start=noon)
    await rig.start()
    await rig.run_for(30)
    await rig.control.override("lights", False, 600, "ann")
    await rig.run_for(300)
    assert rig.outputs.get("lights").on is False
    await rig.run_for(600)
    assert rig.outputs.get("lights").on is True
    await rig.stop()
    lights = [(e.source, e.on) for e in rig.events if e.output.id == "lights"]
    assert lights == [("start", False), ("schedule", True), ("manual", False), ("schedule", True), ("safe", False)]
