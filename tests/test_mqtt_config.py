"""The mqtt platform's YAML options (plugins/mqtt/config.py): errors with file and line, secrets."""

import re
import textwrap
from pathlib import Path

import pytest

from smartanom.cli import main
from smartanom.config import load_config
from smartanom.errors import ConfigError
from smartanom.testing import make_plugin_host

ROOT = Path(__file__).resolve().parent.parent

DEVICES = """
devices:
  - id: 1
    name: Tank
    sensors:
      - {id: 1, type: ph}
      - {id: 2, type: ec}
plugins:
"""


def load(tmp_path, plugins_yaml: str):
    path = tmp_path / "hub.yaml"
    path.write_text(DEVICES + textwrap.indent(textwrap.dedent(plugins_yaml), "  "))
    host = make_plugin_host()
    return load_config(path, host.collect_platforms())


def errors(tmp_path, plugins_yaml: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, plugins_yaml)
    return [str(issue) for issue in caught.value.issues]


@pytest.mark.parametrize("name", ["mqtt-edge.yaml", "mqtt-central.yaml"])
def test_shipped_examples_pass_check_config(name, capsys):
    assert main(["check-config", str(ROOT / "config" / name)]) == 0
    assert "OK" in capsys.readouterr().out


def test_defaults(tmp_path):
    (instance,) = load(tmp_path, "- {platform: mqtt, hub_id: gh-1}\n").plugins
    options = instance.options
    assert (options.broker.host, options.broker.port, options.broker.password) == ("127.0.0.1", 1883, None)
    assert (options.topic_prefix, options.qos, options.retain, options.retain_status) == ("smartanom", 1, False, True)
    assert options.queue_size == 10000 and options.homeassistant is None
    assert instance.platform.needs_device is False


def test_password_from_a_file_next_to_the_config_or_from_the_environment(tmp_path, monkeypatch):
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "mqtt").write_text("from-file\n")
    monkeypatch.setenv("HUB_MQTT_PW", "from-env")
    first, second = load(tmp_path, """
        - platform: mqtt
          hub_id: a
          broker: {username: hub, password_file: secrets/mqtt}
        - platform: mqtt
          hub_id: b
          broker: {username: hub, password_env: HUB_MQTT_PW}
    """).plugins
    assert first.options.broker.password == "from-file"
    assert second.options.broker.password == "from-env"
    assert "from-file" not in repr(first.options) and "from-env" not in repr(second.options)


def test_inline_password_is_refused_and_missing_secrets_point_at_their_line(tmp_path, monkeypatch):
    monkeypatch.delenv("NOT_SET_ANYWHERE", raising=False)
    found = errors(tmp_path, """
        - platform: mqtt
          hub_id: a
          broker:
            username: hub
            password: hunter2
        - platform: mqtt
          hub_id: b
          broker:
            username: hub
            password_env: NOT_SET_ANYWHERE
        - platform: mqtt
          hub_id: c
          broker: {username: hub, password_file: missing.txt}
    """)
    assert found[0].startswith(f"{tmp_path / 'hub.yaml'}, line 14: plugins[0].broker.password: unknown key")
    assert "Did you mean 'password_env'?" in found[0]
    assert found[1].endswith("line 17: plugins[1].broker: password_env: environment variable NOT_SET_ANYWHERE is not set")
    assert "line 22: plugins[2].broker.password_file: file" in found[2] and "missing.txt' does not exist" in found[2]


def test_topics_ids_and_sensors_are_checked(tmp_path):
    found = errors(tmp_path, """
        - platform: mqtt
          hub_id: green house
          subscribe:
            - {topic: "tele/+/SENSOR", sensor: 1}
            - {topic: tele/x/SENSOR, sensor: 9, json_path: AM2301.Temperature}
            - {topic: esp/ph, sensor: 1, timestamp_path: at}
          edge_hubs:
            - hub_id: edge
              sensors: {1: 42}
    """)
    assert any("line 11: plugins[0].hub_id: 'green house' may only contain" in e for e in found)
    assert any("line 13: plugins[0].subscribe[0].topic: wildcards" in e for e in found)
    assert any("line 14: plugins[0].subscribe[1].sensor: sensor 9 is not defined" in e for e in found)
    assert any("line 15: plugins[0].subscribe[2]: timestamp_path needs json_path" in e for e in found)
    assert any("line 18: plugins[0].edge_hubs[0].sensors: sensor 42 is not defined" in e for e in found)


def test_subscribing_to_its_own_topics_is_refused(tmp_path):
    (own,) = errors(tmp_path, """
        - platform: mqtt
          hub_id: gh1
          subscribe:
            - {topic: smartanom/gh1/sensor/2/state, sensor: 1, json_path: value}
    """)
    assert "line 10: plugins[0]: subscribe: topic 'smartanom/gh1/sensor/2/state' is this hub's own topic" in own
    (itself,) = errors(tmp_path, """
        - platform: mqtt
          hub_id: gh1
          edge_hubs: [{hub_id: gh1, sensors: {1: 2}}]
    """)
    assert "edge_hubs: 'gh1' is this hub's own hub_id" in itself


def test_tls_files_must_load(tmp_path):
    (tmp_path / "ca.pem").write_text("not a certificate\n")
    (bad,) = errors(tmp_path, """
        - platform: mqtt
          hub_id: gh1
          broker: {tls: {ca_file: ca.pem}}
    """)
    assert "line 12: plugins[0].broker.tls: cannot load ca_file" in bad


def test_every_option_is_documented():
    from smartanom.builtin.mqtt import config

    docs = (ROOT / "docs" / "mqtt.md").read_text()
    models = [config.MqttOptions, config.BrokerOptions, config.TlsOptions, config.HomeAssistantOptions, config.Subscription, config.EdgeHub]
    inherited = {"platform", "device", "name"}
    def documented(field: str) -> bool:  # as `field`, `broker.field` or `field: value` in a code span or block
        return re.search(rf"`[^`\n]*\b{field}\b[^`\n]*`", docs) is not None or f"{field}:" in docs

    missing = [f"{m.__name__}.{field}" for m in models for field in m.model_fields if field not in inherited and not documented(field)]
    assert missing == []
