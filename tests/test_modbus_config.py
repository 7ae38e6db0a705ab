"""plugins/modbus/config.py: what `smartanom check-config` says about modbus entries."""

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from smartanom.config import load_config
from smartanom.errors import ConfigError
from smartanom.testing import make_plugin_host

ROOT = Path(__file__).resolve().parent.parent

DEVICES = """
devices:
  - id: 1
    name: Tank
    offline_after: 30
    sensors:
      - {id: 1, type: ph}
      - {id: 2, type: ec}
      - {id: 3, type: water_temperature}
  - id: 2
    name: Climate
    sensors:
      - {id: 9, type: humidity}
"""


def check(tmp_path, plugin_yaml: str):
    path = tmp_path / "hub.yaml"
    path.write_text(DEVICES + "plugins:\n" + textwrap.indent(textwrap.dedent(plugin_yaml), "  "))
    return load_config(path, make_plugin_host().collect_platforms())


def issues(tmp_path, plugin_yaml: str):
    with pytest.raises(ConfigError) as caught:
        check(tmp_path, plugin_yaml)
    text = (tmp_path / "hub.yaml").read_text().splitlines()
    # (path, message, the text of the line the issue points at)
    return [(i.path, i.message, text[i.line - 1].strip()) for i in caught.value.issues]


RTU = """
- platform: modbus
  device: 1
  transport: rtu
  port: /dev/ttyUSB0
  timeout: 0.5
  gap: 0.05
  sensors:
"""


def test_the_shipped_example_passes_check_config():
    result = subprocess.run(
        [sys.executable, "-m", "smartanom.cli", "check-config", "config/modbus-probe.yaml"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "OK (1 device, 3 sensors, 1 plugin instance)" in result.stdout


def test_a_valid_entry_and_its_defaults(tmp_path):
    config = check(tmp_path, RTU + "    - {sensor: 1, slave: 1, address: 0}\n")
    options = config.plugins[0].options
    assert options.serial_settings == {"baudrate": 9600, "parity": "N", "stopbits": 1, "bytesize": 8}
    sensor = options.sensors[0]
    assert (sensor.register_type, sensor.data_type, sensor.words, sensor.byte_order, sensor.count) == ("holding", "int16", "big", "big", 1)


def test_word_order_on_a_16_bit_type_is_refused_at_its_line(tmp_path):
    found = issues(tmp_path, RTU + """\
    - sensor: 1
      slave: 1
      address: 0
      data_type: uint16
      word_order: little
""")
    assert len(found) == 1
    path, message, line = found[0]
    assert path == "plugins[0].sensors[0].word_order"
    assert "word_order does not apply to uint16" in message
    assert line == "word_order: little"


def test_byte_order_on_a_16_bit_type_is_allowed(tmp_path):
    config = check(tmp_path, RTU + "    - {sensor: 1, slave: 1, address: 0, data_type: int16, byte_order: little}\n")
    assert config.plugins[0].options.sensors[0].byte_order == "little"


def test_duplicate_and_overlapping_registers(tmp_path):
    found = issues(tmp_path, RTU + """\
    - {sensor: 1, slave: 1, address: 0, data_type: float32}
    - {sensor: 2, slave: 1, address: 1}
    - {sensor: 3, slave: 2, address: 0, data_type: float32}
""")
    assert [(p, l) for p, _m, l in found] == [("plugins[0].sensors[1].address", "- {sensor: 2, slave: 1, address: 1}")]
    assert "slave 1 holding register 1 is already read by sensors[0]" in found[0][1]


def test_the_same_address_in_the_other_register_table_is_not_a_duplicate(tmp_path):
    check(tmp_path, RTU + """\
    - {sensor: 1, slave: 1, address: 0, register_type: holding}
    - {sensor: 2, slave: 1, address: 0, register_type: input}
""")


def test_sensor_not_on_the_device_and_fed_twice(tmp_path):
    found = issues(tmp_path, RTU + """\
    - {sensor: 9, slave: 1, address: 0}
    - {sensor: 1, slave: 1, address: 1}
    - {sensor: 1, slave: 1, address: 2}
""")
    messages = {p: m for p, m, _l in found}
    assert messages["plugins[0].sensors[0].sensor"].startswith("sensor 9 is not on device 1 (its sensors: [1, 2, 3])")
    assert "sensor 1 is already fed by sensors[1]" in messages["plugins[0].sensors[2].sensor"]


def test_scan_interval_the_bus_cannot_serve(tmp_path):
    # 3 sensors x (timeout 0.5 + gap 0.05) = 1.65 s of bus time per round, asked for every second.
    found = issues(tmp_path, RTU + """\
    - {sensor: 1, slave: 1, address: 0, interval: 1}
    - {sensor: 2, slave: 1, address: 1, interval: 1}
    - {sensor: 3, slave: 1, address: 2, interval: 1}
""")
    assert len(found) == 1
    path, message, _line = found[0]
    assert path == "plugins[0].sensors[0].interval"
    assert "timeout + gap = 0.55 s" in message and "1.65 s of bus time per second" in message
    assert "at least 1.65 s" in message
    # The same sensors at the interval the message suggests are accepted.
    check(tmp_path, RTU + "".join(f"    - {{sensor: {i}, slave: 1, address: {i}, interval: 1.65}}\n" for i in (1, 2, 3)))


def test_interval_not_shorter_than_offline_after(tmp_path):
    found = issues(tmp_path, RTU + "    - {sensor: 1, slave: 1, address: 0, interval: 30}\n")
    assert found[0][0] == "plugins[0].sensors[0].interval"
    assert "offline_after (30.0 s)" in found[0][1]


def test_transport_specific_keys(tmp_path):
    found = issues(tmp_path, """\
- platform: modbus
  device: 1
  transport: tcp
  host: 192.168.1.50
  port: /dev/ttyUSB0
  baudrate: 9600
  sensors:
    - {sensor: 1, slave: 1, address: 0}
""")
    messages = {p: (m, l) for p, m, l in found}
    assert messages["plugins[0].port"] == ("with transport: tcp, port is a TCP port number (1-65535), e.g. 502", "port: /dev/ttyUSB0")
    assert messages["plugins[0].baudrate"] == ("baudrate applies to transport: rtu only", "baudrate: 9600")

    found = issues(tmp_path, """\
- platform: modbus
  device: 1
  transport: tcp
  sensors:
    - {sensor: 1, slave: 1, address: 0}
""")
    assert found == [("plugins[0]", "transport: tcp needs host: (the gateway's or probe's address)", "- platform: modbus")]


def test_tcp_defaults_to_port_502(tmp_path):
    config = check(tmp_path, """\
- platform: modbus
  device: 1
  transport: tcp
  host: 127.0.0.1
  sensors:
    - {sensor: 1, slave: 1, address: 0}
""")
    assert config.plugins[0].options.bus_name == "127.0.0.1:502"


def test_typos_and_out_of_range_values(tmp_path):
    found = issues(tmp_path, RTU + """\
    - {sensor: 1, slave: 300, adress: 0, data_type: float16}
""")
    messages = {p: m for p, m, _l in found}
    assert "slave 300 is not an RTU unit id: use 1-247" in messages["plugins[0].sensors[0].slave"] or \
        "less than or equal to 255 (found: 300); the nearest valid value is 255" in messages["plugins[0].sensors[0].slave"]
    assert "Did you mean 'address'?" in messages["plugins[0].sensors[0].adress"]
    assert "float32" in messages["plugins[0].sensors[0].data_type"]


def test_docs_example_is_the_shipped_file_and_valid(tmp_path):
    import re

    import yaml

    docs = (ROOT / "docs/modbus.md").read_text()
    block = re.findall(r"```yaml\n(.*?)```", docs, re.S)[0]
    shipped = yaml.safe_load((ROOT / "config/modbus-probe.yaml").read_text())
    documented = yaml.safe_load(block)
    assert documented["devices"] == shipped["devices"]
    assert documented["plugins"] == shipped["plugins"]
    path = tmp_path / "docs-example.yaml"
    path.write_text(block)
    config = load_config(path, make_plugin_host().collect_platforms())
    assert [s.sensor for s in config.plugins[0].options.sensors] == [1, 2, 3]


def test_mistyped_values_get_the_nearest_valid_one(tmp_path):
    found = issues(tmp_path, """\
- platform: modbus
  device: 1
  transport: rtu
  port: /dev/ttyUSB0
  parity: n
  stopbits: 3
  timeout: 90
  sensors:
    - {sensor: 1, slave: 1, register_type: holdings, address: 0, data_type: flaot32}
""")
    messages = {p: m for p, m, _l in found}
    assert messages["plugins[0].parity"].endswith("(found: 'n'). Did you mean N?")
    assert messages["plugins[0].stopbits"].endswith("(found: 3). Did you mean 2?")
    assert messages["plugins[0].timeout"].endswith("(found: 90); the nearest valid value is 60")
    assert messages["plugins[0].sensors[0].register_type"].endswith("Did you mean holding?")
    assert messages["plugins[0].sensors[0].data_type"].endswith("Did you mean float32?")


def test_unit_ids_0_and_255_are_for_tcp_only(tmp_path):
    found = issues(tmp_path, RTU + """\
    - {sensor: 1, slave: 0, address: 0}
    - {sensor: 2, slave: 255, address: 0}
""")
    assert [(p, m.split(":")[0]) for p, m, _l in found] == [
        ("plugins[0].sensors[0].slave", "slave 0 is not an RTU unit id"),
        ("plugins[0].sensors[1].slave", "slave 255 is not an RTU unit id"),
    ]
    config = check(tmp_path, """\
- platform: modbus
  device: 1
  transport: tcp
  host: 192.0.2.10
  sensors:
    - {sensor: 1, slave: 0, address: 0}
    - {sensor: 2, slave: 255, address: 0}
""")
    assert [s.slave for s in config.plugins[0].options.sensors] == [0, 255]


def test_datasheet_register_numbers_are_warned_about_by_check_config(tmp_path):
    path = tmp_path / "hub.yaml"
    path.write_text(DEVICES + "plugins:\n" + textwrap.indent(RTU + """\
    - {sensor: 1, slave: 1, address: 40001}
    - {sensor: 2, slave: 1, register_type: input, address: 30005}
    - {sensor: 3, slave: 1, address: 7}
""", "  "))
    result = subprocess.run([sys.executable, "-m", "smartanom.cli", "check-config", str(path)], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if "datasheet" in line]
    lines = path.read_text().splitlines()
    assert warnings == [
        f"warning: {path}, line {lines.index('      - {sensor: 1, slave: 1, address: 40001}') + 1}: plugins[0].sensors[0].address: "
        "address 40001 looks like a datasheet register number (holding register 40001 = offset 0), but addresses here are "
        "0-based offsets: if so, write address: 0 with register_type: holding",
        f"warning: {path}, line {lines.index('      - {sensor: 2, slave: 1, register_type: input, address: 30005}') + 1}: plugins[0].sensors[1].address: "
        "address 30005 looks like a datasheet register number (input register 30001 = offset 0), but addresses here are "
        "0-based offsets: if so, write address: 4 with register_type: input",
    ], result.stderr


def test_two_buses_on_one_serial_port_are_an_error(tmp_path):
    found = issues(tmp_path, RTU + """\
    - {sensor: 1, slave: 1, address: 0}
""" + RTU.replace("device: 1", "device: 2") + """\
    - {sensor: 9, slave: 2, address: 0}
""")
    assert [(p, m) for p, m, _l in found] == [
        ("plugins[1].port", "serial port /dev/ttyUSB0 is already used by plugins[0]: one entry per port (two readers would each get part of the data)"),
    ]
