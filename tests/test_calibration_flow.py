"""The guided calibration on simulated time: stability rule, states, cancel, never half-applied,
EC compensation's stale rule, reminders, and the calibrations table (migration 3)."""

import asyncio
import logging
import sqlite3

import pytest

from smartanom import schema
from smartanom.calibration import service as service_module
from smartanom.calibration.config import CalibrationConfig
from smartanom.calibration.flow import Stability, StabilityRule
from smartanom.calibration.latest import LatestReadings
from smartanom.calibration.service import CalibrationService
from smartanom.calibration.store import CalibrationStore
from smartanom.events import SensorReading
from smartanom.registry import Device, Registry, Sensor
from smartanom.storage import connect


class Clock:
    def __init__(self, t=1000.0):
        self.t = t

    def __call__(self):
        return self.t


def make_registry():
    device = Device(1, "Tank", offline_after=30.0)
    for sid, stype, unit in [(1, "ph", "ph"), (2, "ec", "mS/cm"), (3, "water_temperature", "celsius")]:
        device.sensors.append(Sensor(sid, stype, unit, stype, device))
    return Registry([device])


@pytest.fixture
def db(tmp_path):
    path = tmp_path / "hub.db"
    conn = connect(path)
    schema.upgrade(conn)
    conn.close()
    return path


def make_service(db, config=None, store=None, clock=None, wall=None):
    registry = make_registry()
    clock = clock or Clock()
    latest = LatestReadings(clock)
    config = config or CalibrationConfig.model_validate({"stability": {"seconds": 10, "timeout": 60}})
    svc = CalibrationService(registry, config, store or CalibrationStore(db), latest, clock=clock, wall=wall or Clock(1_700_000_000.0))
    return svc, registry, clock, latest


def feed(svc, sensor, clock, raw, seconds, step=1.0):
    """Raw readings every `step` seconds of simulated time; what transform returned for each."""
    out = []
    for _ in range(int(seconds / step)):
        clock.t += step
        out.append(svc.transform(sensor, raw))
    return out


def test_stability_needs_the_whole_window_enough_samples_and_a_small_spread():
    rule = StabilityRule(seconds=10, spread=0.02)
    settled = Stability(rule, started=0.0)
    for t in range(0, 10):
        assert settled.add(t, 4.0 + 0.01 * (t % 2)) is None  # steady, but not yet 10 s of measuring
    assert settled.add(10, 4.0) == pytest.approx(4.0045, abs=0.0001)  # the mean of the window
    s = Stability(rule, started=0.0)
    for t in range(0, 16):
        # 7.05 at t=5 spoils every window that holds it (until t=15: the last 10 s)
        assert s.add(t, 7.05 if t == 5 else 7.0) is None, t
    assert s.add(16, 7.0) == pytest.approx(7.0)
    few = Stability(StabilityRule(seconds=10, spread=0.02), started=0.0)
    assert few.add(0, 7.0) is None and few.add(10, 7.0) is None  # two samples are not enough
    assert few.add(10.5, 7.0) is None  # the one at 0 left the window: still two
    assert few.add(11, 7.0) == pytest.approx(7.0)


def test_relative_spread_for_ec():
    rule = StabilityRule(seconds=4, spread_percent=1.0)
    s = Stability(rule, 0.0)
    assert [s.add(t, v) for t, v in [(1, 1.405), (2, 1.415), (3, 1.41)]] == [None, None, None]
    assert s.add(4, 1.41) == pytest.approx(1.41)  # spread 0.01 <= 1 % of 1.41
    s = Stability(rule, 0.0)
    assert [s.add(t, v) for t, v in [(1, 1.38), (2, 1.42), (3, 1.40), (4, 1.41)]] == [None] * 4


def test_ph_three_point_session_end_to_end_on_simulated_time(db):
    async def main():
        svc, registry, clock, _ = make_service(db)
        ph = registry.sensor(1)
        assert svc.transform(ph, 6.5).raw is None  # no calibration: the value as it came
        session = svc.begin(ph)
        assert session.standards == [7.0, 4.0, 10.0] and session.state == "waiting"
        assert svc.is_calibrating(1) and svc.standard_in_use(1) == 7.0
        assert feed(svc, ph, clock, 6.95, 30) == [None] * 30  # withheld, nothing recorded while waiting
        assert session.points == []
        for standard, raw in [(7.0, 6.95), (4.0, 4.1), (10.0, 9.8)]:
            assert svc.standard_in_use(1) == standard
            svc.measure(ph)
            assert "measuring in the pH" in session.message
            feed(svc, ph, clock, raw, 12)
        assert session.state == "saving"
        for _ in range(200):
            if session.state != "saving":
                break
            await asyncio.sleep(0.01)
        assert session.state == "done", session.message
        assert session.report["verdict"] == "good" and session.report["slope_percent"] == [95.0, 95.0]
        assert "healthy" in session.message
        assert not svc.is_calibrating(1) and svc.standard_in_use(1) is None
        out = svc.transform(ph, 6.0)
        assert out.value == pytest.approx((6.0 - 0.3) / 0.95) and out.raw == 6.0 and out.calibration_id == session.calibration_id
        # Saved: a new service (a restarted hub) applies it too.
        again, _, _, _ = make_service(db)
        await again.start()
        await again.stop()
        assert again.transform(ph, 6.0).calibration_id == session.calibration_id

    asyncio.run(main())


def test_timeout_then_measure_again(db):
    svc, registry, clock, _ = make_service(db)
    ph = registry.sensor(1)
    session = svc.begin(ph, [7.0])
    svc.measure(ph)
    values = iter([6.9, 7.1] * 100)
    for _ in range(61):
        clock.t += 1
        svc.transform(ph, next(values))
    assert session.state == "unstable" and "did not settle within 60 s" in session.message
    svc.measure(ph)
    assert session.state == "measuring"
    # No readings at all: the timeout still shows when someone looks.
    clock.t += 61
    assert svc.session(ph).state == "unstable" and "is the probe's device sending" in session.message


def test_cancel_leaves_the_previous_calibration(db):
    async def main():
        svc, registry, clock, _ = make_service(db)
        ph = registry.sensor(1)
        svc.begin(ph, [7.0])
        svc.measure(ph)
        feed(svc, ph, clock, 6.8, 11)
        while svc.sessions[1].state == "saving":
            await asyncio.sleep(0.01)
        first = svc.active[1].id
        session = svc.begin(ph, [7.0, 4.0])
        svc.measure(ph)
        feed(svc, ph, clock, 7.3, 11)  # first point in, second never measured
        svc.cancel(ph)
        assert session.state == "cancelled" and "nothing was applied" in session.message
        assert svc.active[1].id == first and svc.transform(ph, 6.8).value == pytest.approx(7.0)
        assert not svc.is_calibrating(1)
        svc.cancel(ph)  # a finished session is dismissed
        assert 1 not in svc.sessions

    asyncio.run(main())


def test_rejected_probe_is_not_applied(db):
    svc, registry, clock, _ = make_service(db)
    ph = registry.sensor(1)
    session = svc.begin(ph, [7.0, 4.0])
    for raw in (7.0, 5.0):  # 2 pH units for 3: 67 % of Nernst
        svc.measure(ph)
        feed(svc, ph, clock, raw, 11)
    assert session.state == "rejected" and "clean or replace the probe" in session.message
    assert 1 not in svc.active
    assert svc.transform(ph, 6.0).value == 6.0


def test_a_failed_save_applies_nothing(db):
    class BrokenStore(CalibrationStore):
        def save(self, *args):
            raise sqlite3.OperationalError("disk I/O error")

    async def main():
        svc, registry, clock, _ = make_service(db, store=BrokenStore(db))
        ph = registry.sensor(1)
        session = svc.begin(ph, [7.0])
        svc.measure(ph)
        feed(svc, ph, clock, 6.8, 11)
        while session.state == "saving":
            await asyncio.sleep(0.01)
        assert session.state == "failed" and "disk I/O error" in session.message and "nothing was applied" in session.message
        assert 1 not in svc.active and svc.transform(ph, 6.8).value == 6.8

    asyncio.run(main())


def test_an_idle_session_is_cancelled_and_readings_flow_again(db):
    config = CalibrationConfig.model_validate({"idle_timeout": 300})
    svc, registry, clock, _ = make_service(db, config=config)
    ph = registry.sensor(1)
    session = svc.begin(ph)
    assert feed(svc, ph, clock, 6.5, 300, step=10) == [None] * 30
    clock.t += 1
    assert svc.transform(ph, 6.5).value == 6.5
    assert session.state == "cancelled" and "idle" in session.message


def test_a_second_session_is_refused_while_one_runs(db):
    svc, registry, _, _ = make_service(db)
    svc.begin(registry.sensor(1))
    with pytest.raises(service_module.SessionError, match="being calibrated already"):
        svc.begin(registry.sensor(1))


def test_ec_compensation_and_its_stale_rule(db, caplog):
    config = CalibrationConfig.model_validate({"sensors": [{"sensor": 2, "compensation": {"temperature_sensor": 3, "stale_after": 60}}]})
    svc, registry, clock, latest = make_service(db, config=config)
    ec, thermometer = registry.sensor(2), registry.sensor(3)
    assert svc.transform(ec, 1.2) is None  # no temperature yet: held back
    latest.record(SensorReading(thermometer, 20.0, 0.0))
    out = svc.transform(ec, 1.2)
    assert out.value == pytest.approx(1.2 / 0.9) and out.raw == 1.2 and out.calibration_id is None
    clock.t += 60
    assert svc.transform(ec, 1.2) is not None  # exactly stale_after old: still fresh
    clock.t += 1
    with caplog.at_level(logging.WARNING, "smartanom.calibration"):
        assert svc.transform(ec, 1.2) is None
        assert svc.transform(ec, 1.2) is None
    warnings = [r.getMessage() for r in caplog.records if "held back" in r.getMessage()]
    assert len(warnings) == 1 and "last sent 61 s ago" in warnings[0]
    assert svc.status(ec)["compensation"]["stale"] is True
    latest.record(SensorReading(thermometer, 30.0, 0.0))
    assert svc.transform(ec, 1.65).value == pytest.approx(1.5)
    assert svc.status(ec)["compensation"]["stale"] is False


def test_reminders_when_due_once_a_day(db, monkeypatch):
    raised = []
    monkeypatch.setattr(service_module, "raise_calibration_reminder", lambda alerts, sensor, state: raised.append((sensor.id, state["due"])))
    config = CalibrationConfig.model_validate({"reminder_days": 30, "sensors": [{"sensor": 2, "reminder_days": 7}]})
    wall = Clock(1_700_000_000.0)
    svc, registry, _, _ = make_service(db, config=config, wall=wall)
    store = CalibrationStore(db)
    from smartanom.calibration.store import curve_for
    from smartanom.calibration.fit import Point

    svc.active[1] = store.save(1, wall.t, "ph", curve_for("ph", [Point(6.9, 7.0)]), {})
    assert svc.check_reminders() == [2]  # sensor 2 is listed and was never calibrated
    assert svc.due_state(registry.sensor(1))["due"] is False
    wall.t += 31 * 86400
    assert svc.due_state(registry.sensor(1)) == {
        "due": True, "age_days": 31.0, "reminder_days": 30.0,
        "message": "sensor 1 (ph) was calibrated 31.0 days ago, more than 30: recalibrate it",
    }
    assert svc.check_reminders() == [1, 2]
    wall.t += 3600
    assert svc.check_reminders() == []  # once a day
    wall.t += 86400
    assert svc.check_reminders() == [1, 2]
    assert raised == [(2, True), (1, True), (2, True), (1, True), (2, True)]
    assert svc.due_state(registry.sensor(3)) is None  # nobody calibrates it


def test_migration_3_keeps_old_readings_and_adds_the_columns(tmp_path):
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    conn.executescript(schema.MIGRATIONS[0].sql + "PRAGMA user_version = 1;")
    conn.execute("INSERT INTO readings (sensor_id, ts, value) VALUES (1, 1.0, 6.2)")
    conn.commit()
    done = schema.upgrade(conn)
    # 2: the alerts tables; then any later step that has landed since (4 rollups, 5 outputs).
    assert [m.version for m in done][:2] == [2, 3] and schema.version(conn) == schema.LATEST
    assert conn.execute("SELECT sensor_id, value, raw, calibration_id FROM readings").fetchall() == [(1, 6.2, None, None)]
    assert conn.execute("SELECT count(*) FROM calibrations").fetchone() == (0,)
    conn.close()


def test_a_look_after_the_timeout_tells_an_unsettled_probe_from_a_silent_one(db):
    """The CLI polls twice a second and readings come every few seconds, so the timeout is
    usually noticed by a look (GET), between readings: a probe that sends but does not
    settle must still be told to settle, not asked whether its device is sending."""
    svc, registry, clock, _ = make_service(db)
    ph = registry.sensor(1)
    session = svc.begin(ph, [7.0])
    svc.measure(ph)
    values = iter([6.9, 7.1] * 100)
    for _ in range(60):
        clock.t += 1
        svc.transform(ph, next(values))
    clock.t += 0.5  # past the 60 s timeout; the next reading is half a second away
    assert svc.session(ph).state == "unstable"
    assert "did not settle within 60 s (spread 0.2" in session.message, session.message
    # Readings that arrive, but too rarely for the window: the window is what to change.
    svc.measure(ph)
    for _ in range(4):
        clock.t += 15
        svc.transform(ph, 7.0)
    clock.t += 1
    assert svc.session(ph).state == "unstable"
    assert "1 reading in the last 10 s" in session.message and "stability" in session.message, session.message


def test_an_ec_point_without_a_fresh_water_temperature_says_so(db):
    """EC readings held back for a stale thermometer never reach the session: its timeout
    must name the thermometer, not ask whether the (sending) EC probe's device is sending."""
    config = CalibrationConfig.model_validate({
        "stability": {"seconds": 10, "timeout": 60},
        "sensors": [{"sensor": 2, "compensation": {"temperature_sensor": 3, "stale_after": 30}}],
    })
    svc, registry, clock, _ = make_service(db, config=config)
    ec = registry.sensor(2)
    session = svc.begin(ec, [1.413])
    svc.measure(ec)
    assert feed(svc, ec, clock, 1.5, 61) == [None] * 61
    assert svc.session(ec).state == "unstable"  # as the CLI's next look finds it
    assert "water temperature sensor 3" in session.message and "device sending" not in session.message, session.message


def test_a_session_cut_short_by_the_hub_stopping_is_logged(db, caplog):
    svc, registry, clock, _ = make_service(db)
    ph = registry.sensor(1)
    svc.begin(ph, [7.0, 4.0])
    svc.measure(ph)
    with caplog.at_level(logging.INFO, "smartanom.calibration"):
        asyncio.run(svc.stop())
    lines = [r.getMessage() for r in caplog.records if "hub is stopping" in r.getMessage()]
    assert lines == ["Sensor 1: calibration cancelled, the hub is stopping; nothing applied"]
    assert svc.active == {} and not svc.is_calibrating(1)
