"""outputs: and control: in the config file: every mistake located by file and line."""

import subprocess
import sys
import textwrap

import pytest

from smartanom.config import load_config
from smartanom.errors import ConfigError
from smartanom.testing import make_plugin_host

HEAD = """
devices:
  - id: 1
    name: Tank
    sensors:
      - {id: 1, type: ph}
      - {id: 2, type: water_level}
outputs:
  - id: lights
    name: Grow lights
    type: simulated
    device: 1
  - id: acid
    name: pH-down pump
    type: simulated
    device: 1
    role: ph_down
"""
DOSING = """
    - id: ph
      sensor: 1
      output: acid
      direction: down
      target: 5.8
      pump_ml_per_s: 1.2
      gain_ml: 20
      max_dose_ml: 10
      max_ml_per_hour: 30
      max_ml_per_day: 100
      level: {sensor: 2, min: 15}
"""


@pytest.fixture(scope="module")
def host():
    host = make_plugin_host()
    host.collect_platforms()
    host.collect_outputs()
    return host


def load(tmp_path, host, text):
    path = tmp_path / "smartanom.yaml"
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return load_config(path, host.platforms, output_kinds=host.output_kinds)


def errors(tmp_path, host, text) -> list[str]:
    with pytest.raises(ConfigError) as exc:
        load(tmp_path, host, text)
    return [str(issue).split("smartanom.yaml, ", 1)[1] for issue in exc.value.issues]


def test_a_good_file_loads(tmp_path, host):
    config = load(tmp_path, host, HEAD + """
control:
  timezone: Europe/Amsterdam
  schedules:
    - output: lights
      windows: [{start: "06:00", end: "22:00"}]
  dosing:""" + DOSING)
    assert [o.id for o in config.outputs] == ["lights", "acid"]
    assert config.outputs[0].safe_state is False
    assert config.control.dosing[0].level.min == 15


def test_rules_naming_missing_outputs_or_sensors(tmp_path, host):
    found = errors(tmp_path, host, HEAD + """
control:
  schedules:
    - output: light
      windows: [{start: "06:00", end: "22:00"}]
  thresholds:
    - output: lights
      sensor: 9
      on_below: 10
      off_above: 20
  dosing:""" + DOSING.replace("sensor: 2,", "sensor: 7,"))
    assert found == [
        "line 20: control.schedules[0].output: output 'light' is not defined under 'outputs:' (defined: acid, lights)",
        "line 24: control.thresholds[0].sensor: sensor 9 is not defined under 'devices:' (defined: 1, 2)",
        "line 38: control.dosing[0].level.sensor: sensor 7 is not defined under 'devices:' (defined: 1, 2)",
    ]


def test_one_rule_per_output_and_dosing_pumps_are_safe_off(tmp_path, host):
    found = errors(tmp_path, host, HEAD.replace("role: ph_down", "role: ph_down\n    safe_state: on") + """
control:
  schedules:
    - output: lights
      cycle: {on_minutes: 15, off_minutes: 45}
    - output: lights
      windows: [{start: "06:00", end: "07:00"}]
  dosing:""" + DOSING)
    assert found == [
        "line 23: control.schedules[1].output: output 'lights' is already driven by control.schedules[0]; one rule per output",
        "line 28: control.dosing[0].output: output 'acid' doses, so its safe_state must be off",
    ]


def test_values_and_keys(tmp_path, host):
    found = errors(tmp_path, host, HEAD + """
control:
  timezone: Europe/Amsterdan
  schedules:
    - output: lights
      windows:
        - start: 18:00
          end: "25:00"
  thresholds:
    - output: acid
      sensor: 2
      on_below: 30
      off_above: 20
  dosing:""" + DOSING.replace("gain_ml: 20", "gain: 20"))
    assert found == [
        "line 19: control.timezone: unknown time zone 'Europe/Amsterdan'; use an IANA name such as 'Europe/Amsterdam' or 'UTC'",
        "line 23: control.schedules[0].windows[0].start: write times of day in quotes, e.g. '06:00' (YAML read an unquoted time as the number 1080)",
        "line 24: control.schedules[0].windows[0].end: must be a time of day 'HH:MM' (24 h), got '25:00'",
        "line 26: control.thresholds[0]: on_below (30) must be below off_above (20): the gap between them is the hysteresis",
        "line 37: control.dosing[0].gain: unknown key (allowed: id, sensor, output, direction, target, deadband, pump_ml_per_s, mode, gain_ml, pid, min_dose_ml, max_dose_ml, max_ml_per_hour, max_ml_per_day, mixing_seconds, stale_after, measures, plausible, level, require_calibration). Did you mean 'gain_ml'?",
    ]


def test_output_entries(tmp_path, host):
    found = errors(tmp_path, host, """
devices:
  - id: 1
    name: Tank
outputs:
  - id: pump
    name: Pump
    type: simulatd
  - id: Pump 2
    name: Pump
    type: simulated
    device: 1
  - id: lights
    name: Lights
    type: simulated
    device: 3
  - id: fan
    name: Fan
    type: simulated
    device: 1
    safe_state: maybe
  - id: lights
    name: Lights again
    type: simulated
    device: 1
""")
    assert found == [
        "line 7: outputs[0].type: unknown output type 'simulatd' (available: gpio, modbus, mqtt_switch, serial_relay, simulated). Did you mean 'simulated'?",
        "line 8: outputs[1].id: 'Pump 2' is not a usable output id: use lower-case letters, digits, '_' and '-' (at most 64)",
        "line 15: outputs[2].device: device 3 is not defined under 'devices:' (defined: 1)",
        "line 20: outputs[3].safe_state: must be on or off, got 'maybe'",
        "line 21: outputs[4].id: output id 'lights' is already used by outputs[2]",
    ]


def test_check_config_reports_them_with_file_and_line(tmp_path):
    path = tmp_path / "hub.yaml"
    path.write_text(textwrap.dedent(HEAD).lstrip("\n") + "control:\n  dosing:" + DOSING.replace("output: acid", "output: base"))
    done = subprocess.run([sys.executable, "-m", "smartanom.cli", "check-config", str(path)], capture_output=True, text=True)
    assert done.returncode != 0
    assert f"{path}, line 21: control.dosing[0].output: output 'base' is not defined under 'outputs:' (defined: acid, lights)" in done.stderr


def test_the_shipped_example_passes_check_config():
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    done = subprocess.run([sys.executable, "-m", "smartanom.cli", "check-config", str(root / "config" / "control-example.yaml")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "OK (1 device, 3 sensors, 1 plugin instance, 4 outputs, 4 control rules)" in done.stdout


def test_max_on_is_checked_with_its_line(tmp_path, host):
    found = errors(tmp_path, host, HEAD + """
control:
  thresholds:
    - output: lights
      sensor: 2
      on_below: 10
      off_above: 20
      max_on: 0
""")
    assert len(found) == 1 and found[0] == "line 24: control.thresholds[0].max_on: Input should be greater than 0 (found: 0)"


def test_a_dosing_controller_needs_a_sensor_of_its_kind(tmp_path, host):
    head = HEAD.replace("      - {id: 2, type: water_level}", "      - {id: 2, type: water_level}\n      - {id: 3, type: ec}")
    # The pump's role says pH; the sensor is the EC probe.
    found = errors(tmp_path, host, head + "control:\n  dosing:" + DOSING.replace("sensor: 1\n", "sensor: 3\n"))
    assert found == ["line 21: control.dosing[0].sensor: sensor 3 has type 'ec', but this controller doses pH "
                     "(its output 'acid' has role ph_down); point sensor: at a sensor of type ph (defined: 1)"]
    # measures: says it; the sensor is the pH probe.
    found = errors(tmp_path, host, head + "control:\n  dosing:" + DOSING.replace("      sensor: 1\n", "      sensor: 1\n      measures: ec\n"))
    assert found == ["line 21: control.dosing[0].sensor: sensor 1 has type 'ph', but this controller doses EC "
                     "(measures: ec); point sensor: at a sensor of type ec or tds (defined: 3)"]
    # No kind given: a level probe is no dosing sensor at all.
    found = errors(tmp_path, host, head.replace("    role: ph_down\n", "") + "control:\n  dosing:" + DOSING.replace("      sensor: 1\n", "      sensor: 2\n"))
    assert found == ["line 20: control.dosing[0].sensor: sensor 2 has type 'water_level'; a dosing controller "
                     "needs a sensor of type ph, ec or tds (defined: 1, 3)"]


def test_require_calibration_must_be_true_or_false_at_its_line(tmp_path, host):
    found = errors(tmp_path, host, HEAD + "control:\n  dosing:" + DOSING + "      require_calibration: 'no'\n")
    assert found == ["line 30: control.dosing[0].require_calibration: Input should be a valid boolean (found: 'no')"], found
    load(tmp_path, host, HEAD + "control:\n  dosing:" + DOSING + "      require_calibration: false\n")
