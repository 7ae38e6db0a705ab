"""`calibration:` and `derived:` in the YAML: every key checked, every problem at its file and line."""

import textwrap

import pytest

from smartanom.cli import main
from smartanom.config import load_config
from smartanom.errors import ConfigError
from smartanom.testing import make_plugin_host

DEVICES = """
devices:
  - id: 1
    name: Tank
    sensors:
      - {id: 1, type: ph}
      - {id: 2, type: ec}
      - {id: 3, type: water_temperature}
      - {id: 4, type: tds}
  - id: 2
    name: Room
    sensors:
      - {id: 5, type: air_temperature}
      - {id: 6, type: humidity}
      - {id: 7, type: vpd}
      - {id: 8, type: ppfd}
      - {id: 9, type: dli}
      - {id: 10, type: water_temperature}
"""  # lines 1-17; the section under test starts on line 18


@pytest.fixture(scope="module")
def platforms():
    return make_plugin_host().collect_platforms()


def write(tmp_path, extra):
    path = tmp_path / "smartanom.yaml"
    path.write_text(DEVICES.lstrip("\n") + textwrap.dedent(extra).lstrip("\n"))
    return path


def errors(tmp_path, platforms, extra) -> list[str]:
    with pytest.raises(ConfigError) as exc:
        load_config(write(tmp_path, extra), platforms)
    return [str(i) for i in exc.value.issues]


GOOD = """
calibration:
  reminder_days: 21
  idle_timeout: 600
  stability: {seconds: 15, spread_percent: 2, timeout: 90}
  sensors:
    - sensor: 1
      raw_unit: mV
      reminder_days: 14
      stability: {seconds: 20, spread: 1.5}
    - sensor: 2
      compensation: {temperature_sensor: 3, coefficient: 0.019, reference: 20, stale_after: 120}
derived:
  - {sensor: 4, kind: tds, ec: 2, factor: 0.64, max_age: 60}
  - {sensor: 7, kind: vpd, air_temperature: 5, humidity: 6, leaf_offset: -1.5}
  - {sensor: 9, kind: dli, ppfd: 8}
"""


def test_every_key_loads(tmp_path, platforms):
    config = load_config(write(tmp_path, GOOD), platforms)
    cal = config.calibration
    assert (cal.reminder_days, cal.idle_timeout, cal.stability.seconds, cal.stability.spread_percent, cal.stability.timeout) == (21, 600, 15, 2, 90)
    ph, ec = cal.sensors
    assert (ph.raw_unit, ph.reminder_days, ph.stability.spread) == ("mV", 14, 1.5)
    assert (ec.compensation.temperature_sensor, ec.compensation.coefficient, ec.compensation.reference, ec.compensation.stale_after) == (3, 0.019, 20, 120)
    assert [(d.kind, d.inputs()) for d in config.derived] == [("tds", {"ec": 2}), ("vpd", {"air_temperature": 5, "humidity": 6}), ("dli", {"ppfd": 8})]
    registry = config.build_registry()
    assert [s.id for s in registry.sensors.values() if s.computed] == [4, 7, 9]


def test_defaults(tmp_path, platforms):
    config = load_config(write(tmp_path, ""), platforms)
    assert config.calibration.reminder_days == 30 and config.calibration.stability.seconds == 10 and config.derived == []


@pytest.mark.parametrize(
    "extra, expected",
    [
        ("calibration:\n  reminder_days: 0\n", "line 19: calibration.reminder_days: Input should be greater than 0"),
        ("calibration:\n  idle_timeout: soon\n", "line 19: calibration.idle_timeout: Input should be a valid number"),
        ("calibration:\n  remind: 3\n", "line 19: calibration.remind: unknown key"),
        ("calibration:\n  stability: {seconds: -1}\n", "line 19: calibration.stability.seconds: Input should be greater than 0"),
        ("calibration:\n  stability:\n    spread: 0.1\n    spread_percent: 1\n", "line 19: calibration.stability: give 'spread' (raw units) or 'spread_percent', not both"),
        ("calibration:\n  stability: {timeout: 0}\n", "line 19: calibration.stability.timeout: Input should be greater than 0"),
        ("calibration:\n  stability: {seconds: 30, timeout: 20}\n", "line 19: calibration.stability: timeout (20 s) must be longer than seconds (30 s)"),
        ("calibration:\n  sensors:\n    - sensor: 1\n      stability: {seconds: 150}\n", "line 21: calibration.sensors[0].stability: timeout (120 s) must be longer than seconds (150 s)"),
        ("calibration:\n  sensors:\n    - sensor: 1\n      raw_unit: volts\n", "line 21: calibration.sensors[0].raw_unit: Input should be 'ph' or 'mV'"),
        ("calibration:\n  sensors:\n    - sensor: 1\n      reminder_days: -2\n", "line 21: calibration.sensors[0].reminder_days: Input should be greater than 0"),
        ("calibration:\n  sensors:\n    - sensor: 99\n", "line 20: calibration.sensors[0].sensor: sensor 99 is not defined under 'devices:'"),
        ("calibration:\n  sensors:\n    - {sensor: 1}\n    - {sensor: 1}\n", "line 21: calibration.sensors[1].sensor: sensor 1 already has settings in calibration.sensors[0]"),
        ("calibration:\n  sensors:\n    - sensor: 2\n      raw_unit: mV\n", "line 21: calibration.sensors[0].raw_unit: raw_unit is for pH sensors; sensor 2 has type ec"),
        ("calibration:\n  sensors:\n    - sensor: 1\n      compensation: {temperature_sensor: 3}\n", "line 21: calibration.sensors[0].compensation: temperature compensation is for EC sensors; sensor 1 has type ph"),
        ("calibration:\n  sensors:\n    - sensor: 2\n      compensation:\n        temperature_sensor: 10\n", "line 22: calibration.sensors[0].compensation.temperature_sensor: sensor 10 is on device 2; use the water temperature sensor of the EC probe's device 1"),
        ("calibration:\n  sensors:\n    - sensor: 2\n      compensation:\n        temperature_sensor: 1\n", "line 22: calibration.sensors[0].compensation.temperature_sensor: sensor 1 has type ph; the water temperature needs type water_temperature or temperature"),
        ("calibration:\n  sensors:\n    - sensor: 2\n      compensation:\n        temperature_sensor: 77\n", "line 22: calibration.sensors[0].compensation.temperature_sensor: sensor 77 is not defined"),
        ("calibration:\n  sensors:\n    - sensor: 2\n      compensation:\n        temperature_sensor: 3\n        coefficient: 0.5\n", "line 23: calibration.sensors[0].compensation.coefficient: Input should be less than or equal to 0.1"),
        ("calibration:\n  sensors:\n    - sensor: 2\n      compensation:\n        temperature_sensor: 3\n        reference: 99\n", "line 23: calibration.sensors[0].compensation.reference: Input should be less than or equal to 50"),
        ("calibration:\n  sensors:\n    - sensor: 2\n      compensation:\n        temperature_sensor: 3\n        stale_after: 0\n", "line 23: calibration.sensors[0].compensation.stale_after: Input should be greater than 0"),
        ("calibration:\n  sensors:\n    - sensor: 4\nderived:\n  - {sensor: 4, kind: tds, ec: 2}\n", "line 20: calibration.sensors[0].sensor: sensor 4 is derived (computed by the hub): calibrate its inputs instead"),
        ("derived:\n  - sensor: 4\n    kind: tds\n", "line 19: derived[0]: a tds sensor needs 'ec: SENSOR_ID'"),
        ("derived:\n  - sensor: 7\n    kind: vpd\n    air_temperature: 5\n", "line 19: derived[0]: a vpd sensor needs 'humidity: SENSOR_ID'"),
        ("derived:\n  - {sensor: 4, kind: tss, ec: 2}\n", "line 19: derived[0].kind: Input should be 'tds', 'vpd' or 'dli'"),
        ("derived:\n  - sensor: 4\n    kind: tds\n    ec: 2\n    factor: 1.5\n", "line 22: derived[0].factor: Input should be less than or equal to 1"),
        ("derived:\n  - sensor: 7\n    kind: vpd\n    air_temperature: 5\n    humidity: 6\n    leaf_offset: 20\n", "line 23: derived[0].leaf_offset: Input should be less than or equal to 10"),
        ("derived:\n  - sensor: 9\n    kind: dli\n    ppfd: 8\n    max_age: -1\n", "line 22: derived[0].max_age: Input should be greater than 0"),
        ("derived:\n  - sensor: 4\n    kind: tds\n    ec: 2\n    colour: red\n", "line 22: derived[0].colour: unknown key"),
        ("derived:\n  - sensor: 44\n    kind: tds\n    ec: 2\n", "line 19: derived[0].sensor: sensor 44 is not defined under 'devices:' (add it there with type tds)"),
        ("derived:\n  - sensor: 7\n    kind: tds\n    ec: 2\n", "line 19: derived[0].sensor: sensor 7 has type vpd; a tds derived sensor needs type tds"),
        ("derived:\n  - sensor: 4\n    kind: tds\n    ec: 3\n", "line 21: derived[0].ec: sensor 3 has type water_temperature; 'ec' needs a sensor of type ec"),
        ("derived:\n  - sensor: 7\n    kind: vpd\n    air_temperature: 5\n    humidity: 66\n", "line 22: derived[0].humidity: sensor 66 is not defined under 'devices:'"),
        ("derived:\n  - sensor: 9\n    kind: dli\n    ppfd: 5\n", "line 21: derived[0].ppfd: sensor 5 has type air_temperature; 'ppfd' needs a sensor of type ppfd"),
        ("derived:\n  - {sensor: 4, kind: tds, ec: 2}\n  - {sensor: 4, kind: tds, ec: 2}\n", "line 20: derived[1].sensor: sensor 4 is already derived by derived[0]"),
    ],
)
def test_each_mistake_is_located(tmp_path, platforms, extra, expected):
    found = errors(tmp_path, platforms, extra)
    assert any(expected in f for f in found), found
    assert all(str(tmp_path / "smartanom.yaml") in f for f in found)


def test_all_problems_in_one_pass(tmp_path, platforms):
    found = errors(tmp_path, platforms, """
        calibration:
          reminder_days: -1
          sensors:
            - {sensor: 2, compensation: {temperature_sensor: 10}}
        derived:
          - {sensor: 4, kind: tds, ec: 3}
          - {sensor: 4, kind: tds, ec: 2, factor: 2}
        """)
    assert [f.split(", ", 1)[1] for f in found] == [
        "line 19: calibration.reminder_days: Input should be greater than 0 (found: -1)",
        "line 21: calibration.sensors[0].compensation.temperature_sensor: sensor 10 is on device 2; use the water temperature sensor of the EC probe's device 1",
        "line 23: derived[0].ec: sensor 3 has type water_temperature; 'ec' needs a sensor of type ec",
        "line 24: derived[1].factor: Input should be less than or equal to 1 (found: 2); the nearest valid value is 1",
    ]


def test_ec_in_an_unknown_unit_cannot_make_tds(tmp_path, platforms):
    text = DEVICES.replace("{id: 2, type: ec}", "{id: 2, type: ec, unit: dS/m}")
    path = tmp_path / "smartanom.yaml"
    path.write_text(text.lstrip("\n") + "derived:\n  - {sensor: 4, kind: tds, ec: 2}\n")
    with pytest.raises(ConfigError) as exc:
        load_config(path, platforms)
    assert [str(i).split(", ", 1)[1] for i in exc.value.issues] == ["line 19: derived[0].ec: sensor 2 reports in 'dS/m'; TDS is computed from mS/cm, uS/cm, µS/cm"]


def test_check_config_prints_file_and_line(tmp_path, capsys):
    path = write(tmp_path, "derived:\n  - {sensor: 4, kind: tds, ec: 3}\n")
    assert main(["check-config", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}, line 19: derived[0].ec: sensor 3 has type water_temperature" in err
    assert main(["check-config", str(write(tmp_path, GOOD))]) == 0
