"""Closed-loop tests on simulated time: the dosing controller against the simulated tank."""

import asyncio

import pytest

from control_harness import Rig
from smartanom.builtin.simulated.tank import TankSettings
from smartanom.control.outputs import OutputChanged

HOUR, DAY = 3600.0, 86400.0

PH_DOWN = {
    "id": "ph",
    "sensor": 1,
    "output": "acid",
    "direction": "down",
    "target": 5.8,
    "deadband": 0.1,
    "pump_ml_per_s": 1.0,
    "gain_ml": 20.0,
    "max_dose_ml": 10.0,
    "max_ml_per_hour": 40.0,
    "max_ml_per_day": 150.0,
    "mixing_seconds": 300.0,
    "stale_after": 60.0,
    "plausible": {"min": 3.0, "max": 10.0},
    "level": {"sensor": 2, "min": 10.0},
}
ACID = [{"id": "acid", "name": "pH-down pump", "role": "ph_down"}]


def control(**dosing):
    return {"period": 10.0, "dosing": [{**PH_DOWN, **dosing}]}


def band_entry(trace, low, high):
    """When the tank entered [low, high] for good (None if it never settled)."""
    entered = None
    for ts, ph in trace:
        if low <= ph <= high:
            entered = ts if entered is None else entered
        else:
            entered = None
    return entered


@pytest.mark.gen_test(timeout=60)
@pytest.mark.parametrize("mode", ["proportional", "pid"])
async def test_ph_7_to_5_8_without_undershoot(tmp_path, mode):
    extra = {"mode": "pid", "pid": {"kp": 20.0, "ki": 0.002}} if mode == "pid" else {}
    rig = Rig(tmp_path, control(**extra), ACID)
    await rig.start()
    await rig.run_for(DAY)
    await rig.stop()

    start = rig.ph_trace[0][0]
    entered = band_entry(rig.ph_trace, 5.6, 6.0)
    assert entered is not None, f"never settled in 5.8 +/- 0.2: ended at {rig.tank.ph:.2f}"
    assert rig.tank.min_ph >= 5.5, f"undershot to {rig.tank.min_ph:.2f}"
    doses = rig.journal.doses("ph")
    print(f"\n{mode}: time to band {(entered - start) / 60:.0f} min, lowest pH {rig.tank.min_ph:.2f}, "
          f"{len(doses)} doses / {sum(d.ml for d in doses):.0f} ml in 24 h")
    # Every pulse was on for its dose's time and then off again.
    pulses = [e for e in rig.events if e.source == "dose"]
    assert [e.on for e in pulses] == [True, False] * len(doses)


@pytest.mark.gen_test(timeout=60)
@pytest.mark.parametrize("mode", ["proportional", "pid"])
async def test_ec_up_with_nutrient_reaches_its_target(tmp_path, mode):
    extra = {"mode": "pid", "pid": {"kp": 60.0, "ki": 0.005}} if mode == "pid" else {"gain_ml": 60.0}
    settings = {**PH_DOWN, "id": "ec", "sensor": 3, "output": "feed", "direction": "up", "target": 1.6, "deadband": 0.05,
                "plausible": {"min": 0.1, "max": 5.0}, "max_ml_per_hour": 60.0, **extra}
    rig = Rig(tmp_path, {"period": 10.0, "dosing": [settings]}, [{"id": "feed", "name": "Nutrient", "role": "nutrient"}],
              tank=TankSettings(ec=1.2, evaporation_cm_per_hour=0.0))
    await rig.start()
    await rig.run_for(DAY / 2)
    await rig.stop()
    assert 1.55 <= rig.tank.ec <= 1.7, rig.tank.ec


@pytest.mark.gen_test(timeout=60)
async def test_daily_limit_holds_under_a_stuck_high_sensor(tmp_path):
    rig = Rig(tmp_path, control(), ACID)
    rig.ph_sensor = 7.5  # the probe is stuck: dosing never shows
    await rig.start()
    await rig.run_for(2 * DAY)
    await rig.stop()

    doses = rig.journal.doses("ph")
    for dose in doses:
        window = [d.ml for d in doses if dose.ts <= d.ts < dose.ts + DAY]
        assert sum(window) <= PH_DOWN["max_ml_per_day"] + 1e-9
        hour = [d.ml for d in doses if dose.ts <= d.ts < dose.ts + HOUR]
        assert sum(hour) <= PH_DOWN["max_ml_per_hour"] + 1e-9
        assert dose.ml <= PH_DOWN["max_dose_ml"]
    assert sum(d.ml for d in doses) == pytest.approx(2 * PH_DOWN["max_ml_per_day"], abs=PH_DOWN["max_dose_ml"])
    # The pump really ran no more than the record says.
    assert rig.tank.dosed_ml["ph_down"] == pytest.approx(sum(d.ml for d in doses), rel=1e-6)
    stops = [e for e in rig.events if e.source == "interlock"]
    assert any("daily limit reached" in e.reason for e in stops)
    assert all(not e.on for e in stops)
    assert any("daily limit reached" in a["reason"] for a in rig.journal.actuations(limit=1000, output_id="acid"))


@pytest.mark.gen_test(timeout=60)
async def test_a_stale_sensor_stops_dosing_within_one_period(tmp_path):
    rig = Rig(tmp_path, control(max_ml_per_hour=100.0, max_ml_per_day=500.0, mixing_seconds=30.0), ACID)
    rig.ph_sensor = 7.5
    await rig.start()
    await rig.run_for(HOUR)
    assert rig.journal.doses("ph"), "dosing while the sensor was live"
    rig.ph_sensor = "silent"
    silent_from = rig.clock.now()
    await rig.run_for(HOUR)
    await rig.stop()

    deadline = silent_from + PH_DOWN["stale_after"] + 10.0 + 10.0  # last reading <= 10 s before, + one period
    late = [d for d in rig.journal.doses("ph") if d.ts > silent_from + PH_DOWN["stale_after"]]
    assert late == []
    stop = next(e for e in rig.events if e.source == "interlock" and "stale" in e.reason)
    assert silent_from < stop.timestamp <= deadline
    assert not stop.on


@pytest.mark.gen_test(timeout=60)
async def test_low_level_implausible_and_held_sensor_each_stop_dosing(tmp_path):
    rig = Rig(tmp_path, control(mixing_seconds=30.0, max_ml_per_hour=300.0, max_ml_per_day=1000.0), ACID,
              tank=TankSettings(level_cm=9.0))
    rig.ph_sensor = 7.5
    await rig.start()
    await rig.run_for(600)
    assert rig.journal.doses("ph") == []
    assert "below 10" in rig.control.dosers[0].held

    rig.tank.level = 30.0
    await rig.run_for(600)
    assert rig.control.dosers[0].held is None and rig.journal.doses("ph")

    rig.ph_sensor = 12.5  # inside the sensor's 0..14, outside the controller's plausible 3..10
    await rig.run_for(60)
    count = len(rig.journal.doses("ph"))
    await rig.run_for(600)
    assert len(rig.journal.doses("ph")) == count
    assert "outside the plausible" in rig.control.dosers[0].held

    rig.ph_sensor = 7.5
    rig.control.holds.hold(1, "calibration", "being calibrated")
    await rig.run_for(600)
    assert len(rig.journal.doses("ph")) == count
    assert "being calibrated" in rig.control.dosers[0].held
    rig.control.holds.release(1, "calibration")
    await rig.run_for(600)
    assert len(rig.journal.doses("ph")) > count
    await rig.stop()
    reasons = [e.reason for e in rig.events if e.source == "interlock"]
    assert any("water level" in r for r in reasons) and any("plausible" in r for r in reasons) and any("calibrated" in r for r in reasons)


@pytest.mark.gen_test(timeout=60)
async def test_a_restart_neither_repeats_a_dose_nor_resets_the_limits(tmp_path):
    settings = control(mixing_seconds=600.0, max_ml_per_hour=40.0, max_ml_per_day=60.0)
    first = Rig(tmp_path, settings, ACID)
    first.ph_sensor = 7.5
    await first.start()
    await first.run_for(35)  # one dose given, mid-pulse or just after
    given = first.journal.doses("ph")
    assert len(given) == 1
    await first.stop()
    assert first.outputs.get("acid").on is False  # stopped: pump safe

    second = Rig(tmp_path, settings, ACID, start=first.clock.now())
    second.ph_sensor = 7.5
    await second.start()
    assert [e.on for e in second.events if e.output.id == "acid"][:1] == [False]  # starts safe, not dosing
    await second.run_for(300)
    assert len(second.journal.doses("ph")) == 1, "dosed again within the mixing time of the dose before the restart"
    await second.run_for(DAY - 400)
    total = sum(d.ml for d in second.journal.doses("ph"))
    assert total <= 60.0 + 1e-9
    await second.stop()


@pytest.mark.gen_test(timeout=60)
async def test_dry_run_records_but_switches_nothing(tmp_path):
    rig = Rig(tmp_path, {**control(), "dry_run": True}, ACID)
    rig.ph_sensor = 7.5
    await rig.start()
    await rig.run_for(HOUR)
    await rig.stop()
    assert rig.tank.dosed_ml["ph_down"] == 0.0
    assert any(e.on and e.dry_run for e in rig.events)
    assert all(a["dry_run"] for a in rig.journal.actuations(limit=1000))


class Flaky:
    """A driver whose hardware can be unplugged: set() then fails like a lost serial port."""

    def __init__(self, inner):
        self.inner = inner
        self.unplugged = False

    async def set(self, on):
        if self.unplugged:
            from smartanom import OutputError
            raise OutputError("no acknowledgement from the relay board")
        await self.inner.set(on)


@pytest.mark.gen_test(timeout=60)
async def test_lost_hardware_holds_dosing_and_is_made_safe_when_back(tmp_path):
    rig = Rig(tmp_path, control(mixing_seconds=30.0, max_ml_per_hour=300.0, max_ml_per_day=1000.0), ACID)
    acid = rig.outputs.get("acid")
    acid.driver = Flaky(acid.driver)
    rig.ph_sensor = 7.5
    await rig.start()
    await rig.run_for(15)
    assert acid.on is True  # the first dose (at 10 s, 10 ml at 1 ml/s) is running
    acid.driver.unplugged = True
    await rig.run_for(600)
    assert acid.available is False and "no acknowledgement" in acid.error
    doses = len(rig.journal.doses("ph"))
    assert rig.control.dosers[0].held == "output acid is unavailable"
    failed = [a for a in rig.journal.actuations(limit=100, output_id="acid") if not a["ok"]]
    assert failed and "no acknowledgement" in failed[0]["error"]
    acid.driver.unplugged = False
    back_at = rig.clock.now()
    await rig.run_for(600)
    after = [e for e in rig.events if e.output.id == "acid" and e.timestamp >= back_at]
    # Back: first switched off (its safe state) within a period, then dosing resumes.
    assert (after[0].on, after[0].source, after[0].ok) == (False, "safe", True)
    assert after[0].timestamp <= back_at + 10
    assert len(rig.journal.doses("ph")) > doses
    await rig.stop()


@pytest.mark.gen_test(timeout=60)
async def test_a_failing_control_loop_makes_every_output_safe_and_goes_on(tmp_path, monkeypatch):
    from smartanom.control import schedules

    rig = Rig(tmp_path, {"schedules": [{"output": "lights", "cycle": {"on_minutes": 1, "off_minutes": 1}}]},
              [{"id": "lights", "name": "Lights"}])
    await rig.start()
    await rig.run_for(30)
    assert rig.outputs.get("lights").on is True

    def broken(*args):
        raise RuntimeError("a bug")

    monkeypatch.setattr(schedules, "wanted", broken)
    await rig.run_for(20)
    assert rig.outputs.get("lights").on is False
    assert rig.events[-1].reason == "control loop failed"
    monkeypatch.undo()
    await rig.run_for(120)
    assert rig.outputs.get("lights").on in (True, False) and rig.events[-1].source == "schedule"
    await rig.stop()


@pytest.mark.gen_test(timeout=60)
async def test_an_interlock_mid_pulse_stops_the_pump_at_once(tmp_path):
    rig = Rig(tmp_path, control(pump_ml_per_s=0.1), ACID, tank=TankSettings(pump_ml_per_s=0.1))  # 10 ml take 100 s
    rig.ph_sensor = 7.5
    await rig.start()
    await rig.run_for(15)
    assert rig.outputs.get("acid").on is True
    rig.control.holds.hold(1, "test", "probe pulled out")
    await rig.run_for(10)  # within one period
    assert rig.outputs.get("acid").on is False
    assert rig.events[-1].source == "interlock" and "probe pulled out" in rig.events[-1].reason
    assert rig.tank.dosed_ml["ph_down"] < 2.5  # stopped after ~1.5 ml, not the 10 ml pulse
    await rig.stop()


@pytest.mark.gen_test(timeout=60)
async def test_a_reading_measured_before_the_dose_never_counts_as_mixed_or_fresh(tmp_path):
    # A device that buffered readings while offline (an ESP32 uploading its backlog, a
    # WebSocket client replaying) delivers them late. Their measurement time is what
    # counts: a pH taken before the dose says nothing about the mixed tank, and an
    # hour-old value is stale however recently it arrived.
    from smartanom.events import SensorReading

    rig = Rig(tmp_path, control(mixing_seconds=60.0, max_ml_per_hour=100.0, max_ml_per_day=500.0), ACID)
    rig.ph_sensor = 7.5
    await rig.start()
    await rig.run_for(15)
    first = rig.journal.doses("ph")
    assert len(first) == 1
    rig.ph_sensor = "silent"
    await rig.run_for(40)  # the last live readings go stale later than the mixing time ends
    for _ in range(12):  # the backlog: pH 7.5 measured before the dose, delivered after the mixing time
        rig.bus.publish(SensorReading(rig.registry.sensor(1), 7.5, first[0].ts - 5.0))
        rig.bus.publish(SensorReading(rig.registry.sensor(2), 50.0, rig.clock.now()))  # the level stays live
        await rig.run_for(10)
    await rig.stop()
    assert rig.journal.doses("ph") == first, "dosed on readings measured before the dose"
    assert rig.control.readings[1][1] <= first[0].ts


@pytest.mark.gen_test(timeout=60)
async def test_a_dry_run_keeps_its_would_be_doses_within_the_limits(tmp_path):
    # Dry run is for commissioning: its log must show what the pump would do, and the
    # real pump would stop at the daily limit. Real doses are counted apart (below).
    rig = Rig(tmp_path, {**control(mixing_seconds=60.0), "dry_run": True}, ACID)
    rig.ph_sensor = 7.5  # stuck high: the tank never answers a dry run anyway
    await rig.start()
    await rig.run_for(DAY)
    await rig.stop()
    would = rig.journal.doses("ph")
    assert sum(d.ml for d in would) == pytest.approx(PH_DOWN["max_ml_per_day"])
    assert rig.journal.ml_since("ph", 0.0) == 0.0  # none of them counts against the real pump
    assert rig.tank.dosed_ml["ph_down"] == 0.0


class Hung:
    """A driver whose set() never returns once `hung` (a lost link whose library waits forever)."""

    def __init__(self, inner):
        self.inner = inner
        self.hung = False

    async def set(self, on):
        if self.hung:
            await asyncio.Event().wait()
        await self.inner.set(on)


@pytest.mark.gen_test(timeout=60)
async def test_a_hung_output_neither_keeps_a_pump_on_at_stop_nor_blocks_forever(tmp_path):
    rig = Rig(tmp_path, control(pump_ml_per_s=0.1), [{"id": "lights", "name": "Lights"}, *ACID],
              tank=TankSettings(pump_ml_per_s=0.1))  # 10 ml take 100 s
    rig.outputs.set_timeout = 0.5  # real seconds: the bound on one driver call
    lights = rig.outputs.get("lights")
    lights.driver = Hung(lights.driver)
    rig.ph_sensor = 7.5
    await rig.start()
    await rig.run_for(15)
    assert rig.outputs.get("acid").on is True, "the pump should be mid-pulse"
    lights.driver.hung = True
    await asyncio.wait_for(rig.stop(), 10)  # real seconds
    assert rig.outputs.get("acid").on is False and rig.outputs.get("acid").available
    assert lights.available is False and "did not answer" in lights.error


@pytest.mark.gen_test(timeout=60)
@pytest.mark.parametrize("jump", [HOUR, DAY])
async def test_a_forward_clock_jump_lets_no_dose_leave_the_limits_early(tmp_path, jump):
    # A Pi without RTC boots on an old time; NTP then sets the wall clock forward.
    rig = Rig(tmp_path, control(), ACID, tank=TankSettings(evaporation_cm_per_hour=0.0))
    rig.ph_sensor = 7.5  # stuck high: the limits are all that stops the pump
    given = []  # monotonic time of every pump start
    rig.bus.subscribe(OutputChanged, lambda e: given.append(rig.clock.monotonic()) if e.source == "dose" and e.on else None)
    await rig.start()
    await rig.run_for(3 * HOUR)
    rig.clock.jump(jump)
    await rig.run_for(3 * HOUR)
    await rig.stop()

    doses = rig.journal.doses("ph")
    assert len(doses) == len(given)
    real = list(zip(given, (d.ml for d in doses)))  # (seconds since start as really passed, ml)
    for start, _ in real:
        assert sum(ml for at, ml in real if start <= at < start + HOUR) <= PH_DOWN["max_ml_per_hour"] + 1e-9
    assert sum(ml for _, ml in real) <= PH_DOWN["max_ml_per_day"] + 1e-9  # six real hours, one day's limit
    assert rig.tank.dosed_ml["ph_down"] == pytest.approx(sum(ml for _, ml in real), rel=1e-6)


@pytest.mark.gen_test(timeout=60)
async def test_a_forward_clock_jump_does_not_cut_the_mixing_wait(tmp_path):
    rig = Rig(tmp_path, control(), ACID, tank=TankSettings(evaporation_cm_per_hour=0.0))
    rig.ph_sensor = 7.5
    await rig.start()
    await rig.run_for(30)
    assert len(rig.journal.doses("ph")) == 1
    rig.clock.jump(HOUR)
    await rig.run_for(200)  # mixing (300 s) has not really passed
    assert len(rig.journal.doses("ph")) == 1
    await rig.run_for(200)
    assert len(rig.journal.doses("ph")) == 2
    await rig.stop()
