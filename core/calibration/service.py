"""Calibration at run time: raw readings in, calibrated readings out, and the guided flow.

Where it sits in a reading's road: a plugin's raw value -> `transform` (EC
temperature compensation, then the sensor's active calibration curve) -> the
plausibility check on the calibrated value -> the bus. While a sensor is being
calibrated its raw readings feed the session and are withheld from the bus:
the probe sits in a buffer, and pH 4.00 is not the tank's pH (a chart, an alert
or a dosing pump must not act on it).

A finished session is applied only after its row is saved, and only whole: the
new curve replaces the old one in one assignment on the loop, so a reading is
made under the old calibration or the new one, never a mixture.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Callable

from smartanom.calibration.config import CalibrationConfig, SensorCalibrationConfig
from smartanom.calibration.ec import compensate
from smartanom.calibration.fit import CalibrationError, Curve, Point, nernst_slope_mv, ph_health, ph_to_mv
from smartanom.calibration.flow import Session, SessionError, StabilityRule
from smartanom.calibration.latest import LatestReadings
from smartanom.calibration.store import Calibration, CalibrationStore, curve_for
from smartanom.registry import Registry, Sensor

log = logging.getLogger("smartanom.calibration")

# Standards offered when a session names none, by sensor type.
DEFAULT_STANDARDS = {"ph": [7.0, 4.0, 10.0], "ec": {"mS/cm": [1.413], "uS/cm": [1413.0], "µS/cm": [1413.0]}}
# How often the reminder check runs, and how often a due sensor is logged again (seconds).
REMINDER_CHECK = 3600.0
REMINDER_REPEAT = 86400.0
# A pH probe read in mV with no calibration yet: the ideal electrode, 0 mV at pH 7, 59.16 mV/pH.
IDEAL_MV_CURVE = Curve((Point(0.0, 7.0),), slope=-1.0 / nernst_slope_mv(25.0), offset=7.0)


@dataclass(frozen=True, slots=True)
class Calibrated:
    value: float
    raw: float | None = None            # None: the value is the raw reading, untouched
    calibration_id: int | None = None


class CalibrationService:
    def __init__(
        self,
        registry: Registry,
        config: CalibrationConfig,
        store: CalibrationStore,
        latest: LatestReadings,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        alerts=None,  # the alert engine (core/alerts/engine.py): a due calibration is an alert
    ):
        self.registry = registry
        self.config = config
        self.store = store
        self.latest = latest
        self.clock = clock
        self.wall = wall
        self.alerts = alerts
        self.settings: dict[int, SensorCalibrationConfig] = {s.sensor: s for s in config.sensors}
        self.active: dict[int, Calibration] = {}
        self.sessions: dict[int, Session] = {}
        self._stale_compensation: set[int] = set()
        self._reminded: dict[int, float] = {}  # sensor id -> wall time last reminded
        self._task: asyncio.Task | None = None
        self._saving: set[asyncio.Task] = set()  # held so that the loop does not drop them

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            self.active = await loop.run_in_executor(None, self.store.active)
        except Exception as exc:
            # Storage reports an unusable database loudly already; run uncalibrated.
            log.error("Could not read calibrations (%s): readings go out uncalibrated until the database is readable and the hub restarts", exc)
        for cal in self.active.values():
            log.info("Sensor %d calibrated %s (calibration %d)", cal.sensor_id, _age_text(self.wall() - cal.created), cal.id)
        self._task = loop.create_task(self._remind_periodically())

    async def stop(self) -> None:
        if self._saving:  # a calibration being written is finished, not cut in half
            await asyncio.wait(set(self._saving), timeout=10)
        for session in list(self.sessions.values()):
            if session.active and session.state != "saving":  # a grower mid-way should find why in the log
                self.cancel(self.registry.sensor(session.sensor_id), "cancelled, the hub is stopping")
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass

    # -- readings ---------------------------------------------------------

    def transform(self, sensor: Sensor, raw: float) -> Calibrated | None:
        """The reading to publish for `raw`, or None to withhold it (being calibrated,
        or its EC compensation has no fresh water temperature)."""
        settings = self.settings.get(sensor.id)
        value = raw
        comp = settings.compensation if settings is not None else None
        if comp is not None:
            temperature = self.latest.fresh(comp.temperature_sensor, self._stale_after(comp))
            session = self.sessions.get(sensor.id)
            if session is not None:
                session.held_back = None if temperature is not None else (
                    f"as the water temperature sensor {comp.temperature_sensor} sent nothing fresh (EC compensation needs it)"
                )
            if temperature is None:
                self._compensation_stale(sensor, comp.temperature_sensor)
                return None
            if sensor.id in self._stale_compensation:
                self._stale_compensation.discard(sensor.id)
                log.info("Sensor %d (%s): water temperature is fresh; EC readings go out", sensor.id, sensor.name)
            value = compensate(value, temperature, comp.coefficient, comp.reference)
        session = self.sessions.get(sensor.id)
        if session is not None and session.active:
            if self._expired(session):
                pass  # cancelled just now: fall through to publishing
            else:
                if session.sample(value):
                    self._complete(session)
                return None
        cal = self.active.get(sensor.id)
        if cal is not None:
            return Calibrated(cal.curve.apply(value), raw, cal.id)
        if self._raw_unit(sensor) == "mV":
            return Calibrated(IDEAL_MV_CURVE.apply(value), raw, None)
        if comp is not None:
            return Calibrated(value, raw, None)
        return Calibrated(raw)

    def _stale_after(self, comp) -> float:
        if comp.stale_after is not None:
            return comp.stale_after
        return self.registry.sensor(comp.temperature_sensor).device.offline_after

    def _compensation_stale(self, sensor: Sensor, thermometer: int) -> None:
        if sensor.id not in self._stale_compensation:
            self._stale_compensation.add(sensor.id)
            age = self.latest.age(thermometer)
            if age is None:  # at start-up, the thermometer's first reading may simply come later
                log.info("Sensor %d (%s): EC readings wait for the first reading of water temperature sensor %d", sensor.id, sensor.name, thermometer)
                return
            log.warning(
                "Sensor %d (%s): EC readings are held back: its water temperature sensor %d %s, and an "
                "uncompensated EC would be off by about 2 %% per degree (docs/calibration.md)",
                sensor.id, sensor.name, thermometer, f"last sent {age:.0f} s ago",
            )

    # -- the guided flow --------------------------------------------------

    def begin(self, sensor: Sensor, standards: list[float] | None = None, temperature: float | None = None) -> Session:
        current = self.sessions.get(sensor.id)
        if current is not None and current.active and not self._expired(current):
            raise SessionError(f"sensor {sensor.id} is being calibrated already ({current.state}); cancel that session first")
        if sensor.computed:
            raise SessionError(f"sensor {sensor.id} is derived (computed by the hub); calibrate its inputs instead")
        kind = sensor.type if sensor.type in ("ph", "ec") else "linear"
        if standards is None:
            standards = _default_standards(sensor)
            if standards is None:
                raise CalibrationError(f"sensor {sensor.id} ({sensor.type}) has no default standards: name them (the true values of the solutions you will use)")
        if not standards:
            raise CalibrationError("give at least one standard")
        if len(set(standards)) < len(standards):
            raise CalibrationError("each standard must be different")
        if kind == "ph" and not all(0 <= s <= 14 for s in standards):
            raise CalibrationError("pH buffers lie between 0 and 14")
        session = Session(
            sensor.id, kind, list(standards), sensor.unit, self._rule(sensor), self.clock,
            temperature=25.0 if temperature is None else temperature,
        )
        self.sessions[sensor.id] = session
        log.info("Sensor %d (%s): calibration started with standards %s; its readings are held back until it ends", sensor.id, sensor.name, standards)
        return session

    def measure(self, sensor: Sensor) -> Session:
        session = self.session(sensor)
        if session is None or not session.active:
            raise SessionError(f"sensor {sensor.id} has no calibration in progress; start one first")
        session.measure()
        return session

    def cancel(self, sensor: Sensor, reason: str = "cancelled") -> Session | None:
        session = self.sessions.get(sensor.id)
        if session is None:
            return None
        if session.state == "saving":
            raise SessionError("the calibration is being saved; it is applied in a moment (cancel is no longer possible)")
        if session.active:
            session.finish("cancelled", f"{reason}; nothing was applied, the previous calibration stays")
            log.info("Sensor %d: calibration %s; nothing applied", sensor.id, reason)
        else:
            del self.sessions[sensor.id]  # a finished session: dismissed
        return session

    def session(self, sensor: Sensor) -> Session | None:
        session = self.sessions.get(sensor.id)
        if session is not None:
            session.check_timeout()
            self._expired(session)
        return session

    def is_calibrating(self, sensor_id: int) -> bool:
        """Whether the sensor's probe is out of the tank for a calibration (readings withheld)."""
        session = self.sessions.get(sensor_id)
        return session is not None and session.active

    def standard_in_use(self, sensor_id: int) -> float | None:
        """The standard the probe is in (or should be put in) now; None if not calibrating.
        Lets a simulator answer as a real probe would."""
        session = self.sessions.get(sensor_id)
        return session.standard if session is not None and session.active else None

    def _expired(self, session: Session) -> bool:
        if session.state in ("waiting", "unstable") and self.clock() - session.touched > self.config.idle_timeout:
            sensor = self.registry.sensor(session.sensor_id)
            self.cancel(sensor, f"left idle for {self.config.idle_timeout:g} s")
            return True
        return False

    def _complete(self, session: Session) -> None:
        sensor = self.registry.sensor(session.sensor_id)
        try:
            curve = curve_for(session.kind, session.points)
            report = self._report(sensor, session, curve)
        except (CalibrationError, ValueError) as exc:
            session.finish("rejected", f"{exc}; nothing was applied")
            log.warning("Sensor %d: calibration rejected: %s", sensor.id, exc)
            return
        if not report.get("accepted", True):
            session.finish("rejected", report["message"], report)
            log.warning("Sensor %d (%s): calibration rejected: %s", sensor.id, sensor.name, report["message"])
            return
        task = asyncio.get_running_loop().create_task(self._save(sensor, session, curve, report))
        self._saving.add(task)
        task.add_done_callback(self._saving.discard)

    async def _save(self, sensor: Sensor, session: Session, curve: Curve, report: dict) -> None:
        try:
            cal = await asyncio.get_running_loop().run_in_executor(None, self.store.save, sensor.id, self.wall(), session.kind, curve, report)
        except Exception as exc:
            session.finish("failed", f"could not save the calibration ({exc}); nothing was applied, the previous calibration stays")
            log.error("Sensor %d: calibration could not be saved: %s", sensor.id, exc)
            return
        self.active[sensor.id] = cal  # the one step that applies it
        self._reminded.pop(sensor.id, None)
        if self.alerts is not None:
            self.alerts.resolve_alert(reminder_key(sensor))
        session.finish("done", report["message"], report, cal.id)
        log.info("Sensor %d (%s): calibration %d applied: %s", sensor.id, sensor.name, cal.id, report["message"])

    def _report(self, sensor: Sensor, session: Session, curve: Curve) -> dict:
        report = {"slope": curve.slope, "offset": curve.offset, "temperature": session.temperature}
        if session.kind == "ph" and len(session.points) >= 2:
            to_mv = (lambda raw: raw) if self._raw_unit(sensor) == "mV" else ph_to_mv
            health = ph_health([(to_mv(p.raw), p.reference) for p in session.points], session.temperature)
            report.update(health.as_dict(), accepted=health.accepted)
        elif session.kind == "ph":
            report.update(message=f"one-point calibration: readings shifted by {curve.offset:+.3f} pH; the slope is not checked (use two or three buffers for the probe's health); calibration applied")
        elif session.kind == "ec" and len(session.points) == 1:
            report.update(message=f"one-point calibration: readings scaled by {curve.slope:.4f} (cell constant correction); calibration applied")
        else:
            report.update(message=f"readings now = {curve.slope:.5g} x raw {curve.offset:+.5g}; calibration applied")
        return report

    def _rule(self, sensor: Sensor) -> StabilityRule:
        settings = self.settings.get(sensor.id)
        cfg = settings.stability if settings is not None and settings.stability is not None else self.config.stability
        spread, percent = cfg.spread, cfg.spread_percent
        if spread is None and percent is None and sensor.type == "ph":
            # 0.02 pH, as a bench meter's stability criterion; in mV that is 1.2 mV.
            spread = 1.2 if self._raw_unit(sensor) == "mV" else 0.02
        return StabilityRule(cfg.seconds, spread, percent, cfg.timeout)

    def _raw_unit(self, sensor: Sensor) -> str:
        settings = self.settings.get(sensor.id)
        return settings.raw_unit if settings is not None and settings.raw_unit else "ph"

    # -- reminders ---------------------------------------------------------

    def due_state(self, sensor: Sensor) -> dict | None:
        """Whether the sensor's calibration is due; None for sensors nobody calibrates."""
        cal = self.active.get(sensor.id)
        settings = self.settings.get(sensor.id)
        if cal is None and settings is None:
            return None
        limit = settings.reminder_days if settings is not None and settings.reminder_days else self.config.reminder_days
        if cal is None:
            return {"due": True, "age_days": None, "reminder_days": limit, "message": f"sensor {sensor.id} ({sensor.name}) has never been calibrated"}
        age = (self.wall() - cal.created) / 86400.0
        due = age > limit
        message = f"sensor {sensor.id} ({sensor.name}) was calibrated {age:.1f} days ago" + (f", more than {limit:g}: recalibrate it" if due else "")
        return {"due": due, "age_days": round(age, 2), "reminder_days": limit, "message": message}

    def check_reminders(self) -> list[int]:
        """Log (and raise) a reminder for each due sensor, at most once a day each; returns their ids."""
        now = self.wall()
        reminded = []
        for sensor in self.registry.sensors.values():
            state = self.due_state(sensor)
            if state is None or not state["due"]:
                continue
            if now - self._reminded.get(sensor.id, -REMINDER_REPEAT) < REMINDER_REPEAT:
                continue
            self._reminded[sensor.id] = now
            log.warning("Calibration due: %s (docs/calibration.md)", state["message"])
            raise_calibration_reminder(self.alerts, sensor, state)
            reminded.append(sensor.id)
        return reminded

    async def _remind_periodically(self) -> None:
        while True:
            self.check_reminders()
            await asyncio.sleep(REMINDER_CHECK)

    def status(self, sensor: Sensor) -> dict:
        cal = self.active.get(sensor.id)
        session = self.session(sensor)
        settings = self.settings.get(sensor.id)
        out = {
            "sensor_id": sensor.id,
            "calibration": cal.as_dict() if cal is not None else None,
            "due": self.due_state(sensor),
            "session": session.as_dict() if session is not None else None,
        }
        if settings is not None and settings.compensation is not None:
            comp = settings.compensation
            out["compensation"] = {
                "temperature_sensor": comp.temperature_sensor,
                "coefficient": comp.coefficient,
                "reference": comp.reference,
                "stale": sensor.id in self._stale_compensation,
            }
        return out

    def tracked(self) -> list[Sensor]:
        """Sensors with a calibration, settings or a session: what GET /api/calibration lists."""
        ids = set(self.active) | set(self.settings) | set(self.sessions)
        return [self.registry.sensors[i] for i in sorted(ids) if i in self.registry.sensors]


def reminder_key(sensor: Sensor) -> str:
    return f"sensor_{sensor.id}_calibration_due"


def raise_calibration_reminder(alerts, sensor: Sensor, state: dict) -> None:
    """A due calibration as a `warning` alert (docs/alerts.md): shown, streamed and notified
    like any other, resolved when the sensor is calibrated. Raising it again while it is
    active changes nothing (the alert's repeat interval does the reminding)."""
    if alerts is None:
        return
    alerts.raise_alert(
        reminder_key(sensor), "calibration_due", state["message"], severity="warning",
        device_id=sensor.device.id, sensor_id=sensor.id,
        recommendation=f"Calibrate it: smartanom calibrate {sensor.id}, or from the API (docs/calibration.md)",
    )


def _default_standards(sensor: Sensor) -> list[float] | None:
    if sensor.type == "ph":
        return list(DEFAULT_STANDARDS["ph"])
    if sensor.type == "ec":
        found = DEFAULT_STANDARDS["ec"].get(sensor.unit)
        return list(found) if found else None
    return None


def _age_text(seconds: float) -> str:
    return f"{seconds / 86400:.1f} days ago"
