"""The alert state machine on simulated time: pending period, hysteresis, escalation,
no data, inactive devices, maintenance, and alerts raised by other subsystems."""

import random
import textwrap

import pytest

from smartanom.alerts.evaluator import Evaluator
from smartanom.alerts.model import FakeClock
from smartanom.alerts.rules import build_rules
from smartanom.config import load_config
from smartanom.events import DeviceStatus

YAML = """
alerts:
  for: 60
  no_data_after: 0   # off here; the no-data tests turn it on
devices:
  - id: 1
    name: Tank
    profile: lettuce
    sensors:
      - {id: 1, type: ph}
      - {id: 2, type: ec, alert: {for: 0}}
      - {id: 3, type: water_level, alert: {min: 10, critical_min: 5, no_data_after: 0}}
"""


def make(tmp_path, text=YAML):
    path = tmp_path / "hub.yaml"
    path.write_text(textwrap.dedent(text))
    config = load_config(path, {})
    registry = config.build_registry()
    clock = FakeClock()
    ids = iter(range(1, 10_000))
    evaluator = Evaluator(registry, build_rules(config.devices, config.alerts, config.profiles), config.alerts, clock, lambda: next(ids))
    return evaluator, registry, clock


def feed(evaluator, clock, sensor, values, step=1.0):
    """One reading per `step` seconds; every transition on the way, with the tick's too."""
    out = []
    for value in values:
        out += evaluator.reading(sensor, value)
        clock.advance(step)
        out += evaluator.tick()
    return out


def test_a_value_must_stay_out_for_the_pending_period(tmp_path):
    ev, reg, clock = make(tmp_path)
    ph = reg.sensor(1)
    assert feed(ev, clock, ph, [6.5] * 59) == []  # lettuce: good 5.6-6.2; 59 s out is not enough
    started = feed(ev, clock, ph, [6.5] * 2)
    assert [(e, a.severity, a.trigger, a.threshold) for e, a in started] == [("started", "warning", "above_max", 6.2)]
    alert = started[0][1]
    assert alert.sensor_id == 1 and alert.device_id == 1 and "pH-down" in alert.recommendation
    assert "lettuce" in alert.message and "6.5" in alert.message


def test_a_dip_back_in_restarts_the_pending_period(tmp_path):
    ev, reg, clock = make(tmp_path)
    ph = reg.sensor(1)
    assert feed(ev, clock, ph, [6.5] * 50 + [6.0] + [6.5] * 50) == []


def test_resolves_only_after_the_pending_period_back_inside_by_the_hysteresis(tmp_path):
    ev, reg, clock = make(tmp_path)
    ph = reg.sensor(1)
    feed(ev, clock, ph, [6.5] * 61)
    # 6.15 is inside 5.6..6.2 but not by the 0.1 hysteresis: it never resolves.
    assert feed(ev, clock, ph, [6.15] * 300) == []
    assert feed(ev, clock, ph, [6.0] * 59) == []
    resolved = feed(ev, clock, ph, [6.0] * 2)
    assert [e for e, _ in resolved] == ["resolved"]
    assert resolved[0][1].resolved_at is not None and ev.active == {}


def test_a_noisy_signal_at_the_edge_gives_exactly_one_alert(tmp_path):
    """A pH jittering around its maximum for three hours, then settling back: one alert, one resolve."""
    ev, reg, clock = make(tmp_path)
    ph = reg.sensor(1)
    rng = random.Random(5)
    noisy = [6.2 + rng.gauss(0.05, 0.06) for _ in range(3 * 3600 // 5)]
    settled = [6.0 + rng.gauss(0, 0.02) for _ in range(120)]
    events = feed(ev, clock, ph, noisy + settled, step=5.0)
    crossings = sum(1 for a, b in zip(noisy, noisy[1:]) if (a > 6.2) != (b > 6.2))
    assert crossings > 500  # it really did flap across the edge
    assert [e for e, _ in events] == ["started", "resolved"]


def test_critical_escalates_after_the_pending_period(tmp_path):
    ev, reg, clock = make(tmp_path)
    ph = reg.sensor(1)
    feed(ev, clock, ph, [6.5] * 61)
    assert feed(ev, clock, ph, [7.0] * 59) == []  # critical above 6.8
    escalated = feed(ev, clock, ph, [7.0] * 2)
    assert [(e, a.severity, a.threshold) for e, a in escalated] == [("escalated", "critical", 6.8)]
    assert len(ev.active) == 1


def test_for_zero_fires_on_the_first_reading_and_sensor_ranges_override_the_profile(tmp_path):
    ev, reg, clock = make(tmp_path)
    assert [a.severity for _, a in ev.reading(reg.sensor(2), 0.5)] == ["critical"]  # lettuce EC critical below 0.6
    level = reg.sensor(3)  # cm, not percent: the profile's range is skipped, the sensor's own applies
    started = feed(ev, clock, level, [4.0] * 61)
    assert [(a.severity, a.trigger, a.threshold) for _, a in started] == [("critical", "below_critical_min", 5.0)]


NO_DATA = YAML.replace("no_data_after: 0 ", "no_data_after: 300 ")


def test_a_silent_sensor_raises_no_data_and_resolves_when_data_returns(tmp_path):
    ev, reg, clock = make(tmp_path, NO_DATA)
    ph = reg.sensor(1)
    ev.reading(ph, 6.0)
    clock.advance(200)
    ev.reading(reg.sensor(2), 1.0)
    clock.advance(99)
    assert ev.tick() == []
    clock.advance(2)
    events = ev.tick()
    assert [(e, a.key, a.severity) for e, a in events] == [("started", "sensor_1_no_data", "warning")]
    assert "sensor_3_no_data" not in ev.active  # no_data_after: 0 turns it off
    assert [(e, a.key) for e, a in ev.reading(ph, 6.0)] == [("resolved", "sensor_1_no_data")]


def test_an_inactive_device_alerts_and_holds_back_its_sensors_no_data_alerts(tmp_path):
    ev, reg, clock = make(tmp_path, NO_DATA)
    events = ev.device_status(1, DeviceStatus.INACTIVE, "no reading for 30 s")
    assert [(e, a.key, a.severity, a.sensor_id) for e, a in events] == [("started", "device_1_inactive", "critical", None)]
    clock.advance(1000)
    assert ev.tick() == []
    assert [e for e, _ in ev.device_status(1, DeviceStatus.ACTIVE)] == ["resolved"]


def test_maintenance_silences_a_device(tmp_path):
    ev, reg, clock = make(tmp_path)
    ph = reg.sensor(1)
    ev.device_status(1, DeviceStatus.MAINTENANCE)
    assert feed(ev, clock, ph, [9.0] * 1000) == []  # probe out of the tank for cleaning
    ev.device_status(1, DeviceStatus.ACTIVE)
    assert feed(ev, clock, ph, [6.0] * 10) == []  # timers start afresh


def test_a_replayed_backlog_is_not_evaluated(tmp_path):
    ev, reg, clock = make(tmp_path)
    ph = reg.sensor(2)  # for: 0
    assert ev.reading(ph, 0.1, clock.time() - 3600) == []  # an hour-old reading, replayed by an edge hub
    assert [e for e, _ in ev.reading(ph, 0.1, clock.time() - 5)] == ["started"]


def test_other_subsystems_raise_and_resolve_their_own_alerts(tmp_path):
    ev, reg, clock = make(tmp_path)
    started = ev.raise_alert("sensor_1_calibration_due", "calibration_due", "warning", "pH probe calibration is due", device_id=1, sensor_id=1)
    assert [(e, a.kind) for e, a in started] == [("started", "calibration_due")]
    assert ev.raise_alert("sensor_1_calibration_due", "calibration_due", "warning", "again", device_id=1, sensor_id=1) == []
    alert = started[0][1]
    assert [(e, a.state, a.acknowledged_by) for e, a in ev.acknowledge(alert.id, "Ana")] == [("acknowledged", "acknowledged", "Ana")]
    with pytest.raises(KeyError):
        ev.acknowledge(999, "Ana")
    assert [e for e, _ in ev.resolve("sensor_1_calibration_due")] == ["resolved"]
