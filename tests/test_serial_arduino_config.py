"""Options of `platform: serial_arduino` (plugins/serial_arduino/config.py): errors at file and line."""

import textwrap
from pathlib import Path

import pytest

from smartanom.cli import main
from smartanom.config import load_config
from smartanom.errors import ConfigError
from smartanom.testing import make_plugin_host

ROOT = Path(__file__).resolve().parent.parent

HEAD = """\
devices:
  - id: 1
    name: Tank
    sensors:
      - {id: 1, type: water_temperature}
      - {id: 2, type: ph}
  - id: 2
    name: Climate
    sensors:
      - {id: 3, type: humidity}
plugins:
  - platform: serial_arduino
    device: 1
"""  # the plugin entry's options continue at line 14


def load(tmp_path, options: str):
    path = tmp_path / "hub.yaml"
    path.write_text(HEAD + textwrap.indent(textwrap.dedent(options), "    "))
    return load_config(path, make_plugin_host().collect_platforms())


def issues(tmp_path, options: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, options)
    return [str(issue).split(", ", 1)[1] for issue in info.value.issues]


def test_defaults(tmp_path):
    config = load(tmp_path, """\
        port: /dev/serial/by-id/usb-Arduino-if00
        sensors: {pH: 2, " Water_Temperature ": 1}
    """)
    options = config.plugins[0].options
    assert (options.baudrate, options.bytesize, options.parity, options.stopbits) == (9600, 8, "none", 1)
    assert (options.reconnect_min, options.reconnect_max, options.checksum, options.max_line_length) == (1.0, 30.0, "optional", 512)
    assert options.sensors == {"ph": 2, "water_temperature": 1}  # keys as the parser compares them


def test_a_sensor_of_another_device_is_pointed_at_by_its_line(tmp_path):
    assert issues(tmp_path, """\
        port: /dev/ttyUSB0
        sensors:
          ph: 2
          humidity: 3
    """) == ["line 17: plugins[0].sensors.humidity: sensor 3 is not on device 1 (its sensors: [1, 2])"]


@pytest.mark.parametrize(
    "options,expected",
    [
        ("port: ttyUSB0\nsensors: {ph: 2}\n", "line 14: plugins[0].port: 'ttyUSB0' is not a device path"),
        ("sensors: {ph: 2}\n", "line 12: plugins[0].port: required key is missing"),
        ("port: /dev/ttyUSB0\n", "line 12: plugins[0].sensors: required key is missing"),
        ("port: /dev/ttyUSB0\nsensors: {}\n", "line 15: plugins[0].sensors: Dictionary should have at least 1 item"),
        ("port: /dev/ttyUSB0\nsensors: {ph: 2, PH: 1}\n", "line 15: plugins[0].sensors: keys 'ph' and 'PH' are the same"),
        ("port: /dev/ttyUSB0\nsensors: {ph: '2'}\n", "line 15: plugins[0].sensors.ph: Input should be a valid integer"),
        ("port: /dev/ttyUSB0\nsensors: {ph: 2}\nbaudrate: fast\n", "line 16: plugins[0].baudrate: Input should be a valid integer"),
        ("port: /dev/ttyUSB0\nsensors: {ph: 2}\nparity: N\n", "line 16: plugins[0].parity: Input should be 'none', 'even', 'odd', 'mark' or 'space'"),
        ("port: /dev/ttyUSB0\nsensors: {ph: 2}\nstopbits: 3\n", "line 16: plugins[0].stopbits: Input should be 1, 1.5 or 2"),
        ("port: /dev/ttyUSB0\nsensors: {ph: 2}\nbaud: 9600\n", "line 16: plugins[0].baud: unknown key"),
        ("port: /dev/ttyUSB0\nsensors: {ph: 2}\nreconnect_min: 5\nreconnect_max: 2\n", "line 12: plugins[0]: reconnect_max (2) is below reconnect_min (5)"),
    ],
)
def test_bad_options_are_located(tmp_path, options, expected):
    found = issues(tmp_path, options)
    assert len(found) == 1 and found[0].startswith(expected), found


def test_unknown_key_suggests_the_right_one(tmp_path):
    (found,) = issues(tmp_path, "port: /dev/ttyUSB0\nsensors: {ph: 2}\nbaud_rate: 9600\n")
    assert "Did you mean 'baudrate'?" in found


def test_the_shipped_example_config_passes_check_config(capsys):
    assert main(["check-config", str(ROOT / "config" / "serial-arduino.yaml")]) == 0
    assert "OK (1 device, 4 sensors, 1 plugin instance)" in capsys.readouterr().out


DOC = (ROOT / "docs" / "serial-arduino.md").read_text()


def test_the_config_in_the_docs_is_valid(tmp_path):
    block = DOC.split("```yaml\n", 1)[1].split("```", 1)[0]
    path = tmp_path / "from-docs.yaml"
    path.write_text(block)
    config = load_config(path, make_plugin_host().collect_platforms())
    assert config.plugins[0].options.sensors == {"water_temperature": 1, "ph": 2}


def test_the_protocol_examples_in_the_docs_parse():
    from smartanom.builtin.serial_arduino.parser import parse_line

    section = DOC.split("## The line protocol", 1)[1].split("\n- ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| ") and "`" in line]
    examples = [ex for row in rows for ex in row.split("|")[2].split("`")[1::2]]
    assert len(examples) == 5
    for example in examples:
        parsed = parse_line(example.encode())
        assert parsed.values and not parsed.bad_values, example
    assert parse_line(b"water_temperature=21.44,ph=6.82*4D").values == {"water_temperature": 21.44, "ph": 6.82}


def test_every_checksummed_line_in_the_docs_is_one_the_hub_accepts():
    # An installer compares the Serial Monitor with these lines: a wrong checksum
    # here would send them hunting for a fault that is in the docs.
    import re

    from smartanom.builtin.serial_arduino.parser import parse_line

    lines = set(re.findall(r"[A-Za-z_]+=[^\s`|]*\*[0-9A-F]{2}", DOC))
    assert len(lines) >= 2
    for line in lines:
        assert parse_line(line.encode()).values, line
