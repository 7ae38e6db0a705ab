"""core/config.py and core/yamlfile.py: valid files load; every mistake is located."""

import textwrap

import pytest

from core.config import load_config
from core.errors import ConfigError
from core.testing import make_plugin_host


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
    assert any("line 6: devices[0].colour: unknown key (allowed: id, name, offline_after, sensors)" in e for e in found)


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
