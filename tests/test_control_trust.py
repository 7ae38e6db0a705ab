"""A sensor dosing cannot trust holds it, on simulated time: a reading outside the default
plausible band (no `plausible:` in the rule), and a sensor with no calibration or an overdue one."""

import pytest

from control_harness import PH, Rig, START
from smartanom import schema
from smartanom.builtin.simulated.tank import TankSettings
from smartanom.calibration.config import CalibrationConfig
from smartanom.calibration.fit import Curve, Point
from smartanom.calibration.latest import LatestReadings
from smartanom.calibration.service import CalibrationService
from smartanom.calibration.store import CalibrationStore
from smartanom.control.interlocks import Uncalibrated
from smartanom.storage import connect

DAY = 86400.0

PH_DOWN = {
    "id": "ph", "sensor": 1, "output": "acid", "direction": "down", "target": 5.8, "pump_ml_per_s": 1.0,
    "gain_ml": 20.0, "max_dose_ml": 10.0, "max_ml_per_hour": 300.0, "max_ml_per_day": 1000.0,
    "mixing_seconds": 30.0, "stale_after": 60.0,
}
ACID = [{"id": "acid", "name": "pH-down pump", "role": "ph_down"}]
EC_UP = {**PH_DOWN, "id": "ec", "sensor": 3, "output": "feed", "direction": "up", "target": 1.6, "deadband": 0.05, "gain_ml": 60.0}
FEED = [{"id": "feed", "name": "Nutrient", "role": "nutrient"}]


def interlock_reasons(rig) -> list[str]:
    return [e.reason for e in rig.events if e.source == "interlock"]


@pytest.mark.gen_test(timeout=60)
async def test_a_ph_probe_reading_garbage_holds_dosing_without_a_plausible_key(tmp_path):
    rig = Rig(tmp_path, {"period": 10.0, "dosing": [PH_DOWN]}, ACID)
    rig.ph_sensor = 7.5
    await rig.start()
    await rig.run_for(600)
    assert rig.control.dosers[0].held is None and rig.journal.doses("ph")

    rig.ph_sensor = 12.5  # inside the sensor's 0..14, far outside any reservoir: a dry or broken probe
    await rig.run_for(60)
    count = len(rig.journal.doses("ph"))
    await rig.run_for(1200)
    assert len(rig.journal.doses("ph")) == count
    held = rig.control.dosers[0].held
    assert "reads 12.5, outside the default plausible band for ph" in held and "3 to 9.5" in held
    assert any("default plausible band" in r for r in interlock_reasons(rig))

    rig.ph_sensor = 7.5  # the band clears by itself
    await rig.run_for(600)
    assert rig.control.dosers[0].held is None and len(rig.journal.doses("ph")) > count
    await rig.stop()


@pytest.mark.gen_test(timeout=60)
async def test_an_ec_probe_in_air_holds_nutrient_dosing_without_a_plausible_key(tmp_path):
    rig = Rig(tmp_path, {"period": 10.0, "dosing": [EC_UP]}, FEED, tank=TankSettings(ec=1.2, evaporation_cm_per_hour=0.0))
    rig.ec_sensor = 0.0  # a probe out of the water reads no conductivity: "dose!" to a naive loop
    await rig.start()
    await rig.run_for(1800)
    assert rig.journal.doses("ec") == []
    assert "reads 0, outside the default plausible band for ec in mS/cm" in rig.control.dosers[0].held
    assert "0.05 to 8" in rig.control.dosers[0].held

    rig.ec_sensor = None  # back in the tank (EC 1.2, below target): dosing resumes
    await rig.run_for(600)
    assert rig.journal.doses("ec")
    await rig.stop()


@pytest.mark.gen_test(timeout=60)
async def test_an_explicit_plausible_band_replaces_the_default(tmp_path):
    rig = Rig(tmp_path, {"period": 10.0, "dosing": [{**PH_DOWN, "plausible": {"min": 3.0, "max": 13.0}}]}, ACID)
    rig.ph_sensor = 12.5
    await rig.start()
    await rig.run_for(600)
    assert rig.control.dosers[0].held is None and rig.journal.doses("ph")
    await rig.stop()


class Calibrations:
    """The real calibration service and store beside a Rig, on its simulated clock, wired as the hub does."""

    def __init__(self, tmp_path, rig: Rig):
        db = str(tmp_path / "calibration.db")
        conn = connect(db)
        schema.upgrade(conn)
        conn.close()
        self.store = CalibrationStore(db)
        self.rig = rig
        self.service = self._service()
        rig.control.interlocks.append(Uncalibrated(self.service, rig.registry))

    def _service(self) -> CalibrationService:
        return CalibrationService(self.rig.registry, CalibrationConfig.model_validate({}), self.store,
                                  LatestReadings(self.rig.clock.monotonic), clock=self.rig.clock.monotonic, wall=self.rig.clock.now)

    def record(self, created: float) -> None:
        """A pH calibration on record as if made at `created`, applied as a finished session applies it."""
        self.service.active[PH] = self.store.save(PH, created, "ph", Curve((Point(7.0, 7.0), Point(4.0, 4.0))), {"message": "test"})


async def recalibrated_dosing_resumes(rig: Rig, cals: Calibrations) -> None:
    cals.record(rig.clock.now())
    await rig.run_for(600)
    assert rig.control.dosers[0].held is None and rig.journal.doses("ph")
    await rig.stop()


@pytest.mark.gen_test(timeout=60)
async def test_a_ph_sensor_with_no_calibration_on_record_holds_dosing_until_calibrated(tmp_path):
    rig = Rig(tmp_path, {"period": 10.0, "dosing": [PH_DOWN]}, ACID)
    cals = Calibrations(tmp_path, rig)
    rig.ph_sensor = 7.5
    await rig.start()
    await rig.run_for(1200)
    assert rig.journal.doses("ph") == []
    assert rig.control.dosers[0].held == (
        "sensor 1 has no calibration on record: calibrate it: smartanom calibrate 1, "
        "or set require_calibration: false if the probe is calibrated in hardware")
    assert len([r for r in interlock_reasons(rig) if "no calibration on record" in r]) == 1  # once, not every period

    await recalibrated_dosing_resumes(rig, cals)


@pytest.mark.gen_test(timeout=60)
async def test_an_overdue_calibration_holds_dosing_until_the_probe_is_recalibrated(tmp_path):
    rig = Rig(tmp_path, {"period": 10.0, "dosing": [PH_DOWN]}, ACID)
    cals = Calibrations(tmp_path, rig)
    cals.record(START - 40 * DAY)  # the default reminder is every 30 days
    rig.ph_sensor = 7.5
    await rig.start()
    await rig.run_for(1200)
    assert rig.journal.doses("ph") == []
    held = rig.control.dosers[0].held
    assert held.startswith("sensor 1's calibration is overdue (calibrated 40 days ago, due every 30 days): calibrate it: smartanom calibrate 1"), held
    assert cals.service.due_state(rig.registry.sensor(PH))["due"]  # the same judgement as the calibration_due alert

    await recalibrated_dosing_resumes(rig, cals)


@pytest.mark.gen_test(timeout=60)
async def test_require_calibration_false_doses_on_a_probe_calibrated_in_hardware(tmp_path):
    rig = Rig(tmp_path, {"period": 10.0, "dosing": [{**PH_DOWN, "require_calibration": False}]}, ACID)
    Calibrations(tmp_path, rig)
    rig.ph_sensor = 7.5
    await rig.start()
    await rig.run_for(600)
    assert rig.control.dosers[0].held is None and rig.journal.doses("ph")
    await rig.stop()
