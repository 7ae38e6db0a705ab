"""core/config.py and core/yamlfile.py: valid files load; every mistake is located."""

import textwrap

import pytest

from smartanom.config import load_config
from smartanom.errors import ConfigError
from smartanom.testing import make_plugin_host


@pytest.fixture(scope="module")
def platforms():
    return make_plugin_host().collect_platforms()


def load(tmp_path, text, platforms, **kwargs):
    path = tmp_path / "smartanom.yaml"
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return load_config(path, platforms, **kwargs)


def errors(tmp_path, text, platforms) -> list[str]:
    with pytest.raises(ConfigError) as exc:
        load(tmp_path, text, platforms)
    return [str(issue) for issue in exc.value.issues]


GOOD = """
server:
  port: 8123
devices:
  - id: 1
    name: Tank
    offline_after: 5
    sensors:
      - {id: 1, type: ph}
      - {id: 2, type: water_level, unit: percent, name: Reservoir}
plugins:
  - platform: simulated
    device: 1
    seed: 3
"""


def test_shipped_config_is_valid(platforms):
    config = load_config("config/smartanom.yaml", platforms)
    assert {p.platform.name for p in config.plugins} == {"simulated"}
    assert len(config.build_registry().sensors) == 8


def test_good_config_loads_with_defaults_and_unit_overrides(tmp_path, platforms):
    config = load(tmp_path, GOOD, platforms)
    registry = config.build_registry()
    assert config.server.port == 8123 and config.server.host == "127.0.0.1"
    assert config.storage.path == "data/smartanom.db"
    assert registry.sensor(1).unit == "ph"
    assert (registry.sensor(2).unit, registry.sensor(2).name) == ("percent", "Reservoir")
    assert config.plugins[0].options.seed == 3


def test_unknown_sensor_type_names_file_line_path_and_known_types(tmp_path, platforms):
    [error] = errors(tmp_path, GOOD.replace("type: ph}", "type: phh}"), platforms)
    assert error.startswith(f"{tmp_path / 'smartanom.yaml'}, line 8: devices[0].sensors[0].type: 'phh' is not a known sensor type (known: temperature,")
    assert "Did you mean 'ph'?" in error


def test_every_problem_is_reported_at_once(tmp_path, platforms):
    text = """
    server:
      port: "eighty"
    devices:
      - id: 1
        name: Tank
        colour: green
        sensors:
          - {id: 1, type: ph}
          - {id: 1, type: ec}
    """
    found = errors(tmp_path, text, platforms)
    assert any("line 2: server.port: Input should be a valid integer (found: 'eighty')" in e for e in found)
    assert any("line 6: devices[0].colour: unknown key (allowed: id, name, offline_after, profile, sensors)" in e for e in found)


def test_duplicate_sensor_ids_across_devices(tmp_path, platforms):
    text = """
    devices:
      - id: 1
        name: A
        sensors: [{id: 5, type: ph}]
      - id: 2
        name: B
        sensors:
          - {id: 5, type: ec}
    """
    [error] = errors(tmp_path, text, platforms)
    assert "line 8: devices[1].sensors[0].id: sensor id 5 is already used by devices[0].sensors[0]" in error


def test_duplicate_device_ids(tmp_path, platforms):
    text = """
    devices:
      - {id: 1, name: A}
      - {id: 1, name: B}
    """
    [error] = errors(tmp_path, text, platforms)
    assert "line 3: devices[1].id: device id 1 is already used" in error


def test_missing_required_key(tmp_path, platforms):
    text = """
    devices:
      - id: 1
        sensors: []
    """
    [error] = errors(tmp_path, text, platforms)
    assert "line 2: devices[0].name: required key is missing" in error


def test_unknown_platform_with_suggestion(tmp_path, platforms):
    [error] = errors(tmp_path, GOOD.replace("platform: simulated", "platform: simulatd"), platforms)
    assert "line 11: plugins[0].platform: unknown platform 'simulatd' (available:" in error
    assert "Did you mean 'simulated'?" in error


def test_unknown_platform_is_set_aside_when_a_plugin_failed_to_load(tmp_path, platforms):
    config = load(tmp_path, GOOD.replace("platform: simulated", "platform: vendor_x"), platforms, failed_plugins=["vendor_x"])
    assert config.plugins == []
    assert "vendor_x" in str(config.unavailable[0])


def test_plugin_naming_an_unknown_device(tmp_path, platforms):
    [error] = errors(tmp_path, GOOD.replace("    device: 1", "    device: 4"), platforms)
    assert "line 12: plugins[0].device: device 4 is not defined under 'devices:' (defined: 1)" in error


def test_plugin_without_device(tmp_path, platforms):
    [error] = errors(tmp_path, GOOD.replace("    device: 1\n", ""), platforms)
    assert "line 11: plugins[0]: platform 'simulated' needs 'device: ID'" in error


def test_plugin_options_are_validated_with_lines(tmp_path, platforms):
    text = GOOD + "    interval: -1\n    colour: red\n    sensors: [1, 9]\n"
    found = errors(tmp_path, text, platforms)
    assert any("line 14: plugins[0].interval: Input should be greater than 0 (found: -1)" in e for e in found)
    assert any("line 15: plugins[0].colour: unknown key" in e for e in found)
    assert any("line 16: plugins[0].sensors: sensor(s) [9] are not on device 1" in e for e in found)


def test_yaml_syntax_error_has_a_line(tmp_path, platforms):
    [error] = errors(tmp_path, "devices:\n  - id: 1\n    name: [unclosed\n", platforms)
    assert ", line 4: YAML syntax error" in error or ", line 3: YAML syntax error" in error


def test_duplicate_yaml_key(tmp_path, platforms):
    [error] = errors(tmp_path, "server:\n  port: 1\n  port: 2\n", platforms)
    assert "line 3: port: duplicate key (first given on line 2)" in error


def test_top_level_must_be_a_mapping(tmp_path, platforms):
    [error] = errors(tmp_path, "- just\n- a list\n", platforms)
    assert "expected a mapping of sections" in error


def test_missing_file(tmp_path, platforms):
    with pytest.raises(ConfigError, match="file not found"):
        load_config(tmp_path / "nope.yaml", platforms)


def test_empty_file_is_a_hub_with_nothing(tmp_path, platforms):
    config = load(tmp_path, "", platforms)
    assert config.devices == [] and config.plugins == []


@pytest.mark.parametrize(
    "text,expected",
    [
        ("devices:\n\t- id: 1\n", "line 2: YAML syntax error (column 1): while scanning for the next token found character '\\t' that cannot start any token. YAML indentation must use spaces, not tabs"),
        ("devices:\n  - id: 1\n    name: A\n   sensors: []\n", "line 4: YAML syntax error (column 4)"),
        ("server:\n  port 8000\n  host: x\n", "the line above reads 'key: value'"),
    ],
)
def test_yaml_mistakes_say_what_to_change(tmp_path, platforms, text, expected):
    [error] = errors(tmp_path, text, platforms)
    assert expected in error


@pytest.mark.parametrize(
    "text,expected",
    [
        ('server:\n  port: "8000"\n', "line 2: server.port: Input should be a valid integer (found: '8000'); remove the quotes"),
        ("server:\n  port: yes\n", "line 2: server.port: Input should be a valid integer (found: true; YAML reads yes/no/on/off/true/false as a boolean)"),
        ("devices:\n  id: 1\n", "line 1: devices: Input should be a valid list (found: a mapping of keys)"),
        ("devices:\n  - {id: 1, name: A, sensors: [{id: 1, type: pH}]}\n", "Did you mean 'ph'?"),
    ],
)
def test_type_mistakes_say_what_was_found_and_how_to_fix_it(tmp_path, platforms, text, expected):
    [error] = errors(tmp_path, text, platforms)
    assert expected in error


def test_one_pass_shows_schema_errors_duplicates_and_plugin_errors_together(tmp_path, platforms):
    text = """
    devices:
      - id: 1
        name: Tank
        ofline_after: 5
        sensors: [{id: 1, type: ph}, {id: 1, type: ec}]
      - id: 2
        name: Climate
        sensors: []
    plugins:
      - platform: simulatd
        device: 2
      - platform: simulated
        device: 1
      - platform: simulated
        device: 3
    """
    found = errors(tmp_path, text, platforms)
    assert any("line 4: devices[0].ofline_after: unknown key" in e and "Did you mean 'offline_after'?" in e for e in found)
    assert any("line 5: devices[0].sensors[1].id: sensor id 1 is already used" in e for e in found)
    assert any("line 10: plugins[0].platform: unknown platform 'simulatd'" in e for e in found)
    assert any("line 15: plugins[2].device: device 3 is not defined" in e for e in found)
    # device 1 exists but has errors of its own: its plugin entry is not blamed too.
    assert not any("plugins[1]" in e for e in found)
    assert len(found) == 4


def test_sensor_range_must_be_in_order(tmp_path, platforms):
    [error] = errors(tmp_path, "devices:\n  - id: 1\n    name: A\n    sensors:\n      - {id: 1, type: ph, min: 14, max: 0}\n", platforms)
    assert "line 5: devices[0].sensors[0]: min (14) must be below max (0)" in error
