"""Every alert key is validated with file and line (`smartanom check-config` prints these)."""

import textwrap

import pytest

from smartanom.config import load_config
from smartanom.errors import ConfigError

BASE = """
alerts:
  notify: ["ntfy://my-tank-topic"]
  for: 30
profiles:
  my_lettuce:
    extends: lettuce
    sensors:
      ph: {{min: 5.8, max: 6.0}}
devices:
  - id: 1
    name: Tank
    profile: my_lettuce
    sensors:
      - {{id: 1, type: ph, alert: {{for: 120}}}}
      - id: 2
        type: ec
        alert: {sensor_alert}
"""


def issues(tmp_path, text) -> list[str]:
    path = tmp_path / "hub.yaml"
    path.write_text(textwrap.dedent(text))
    with pytest.raises(ConfigError) as exc:
        load_config(path, {})
    return [str(issue) for issue in exc.value.issues]


def test_a_good_file_loads(tmp_path):
    path = tmp_path / "hub.yaml"
    path.write_text(textwrap.dedent(BASE.format(sensor_alert="{min: 1.0, max: 1.3, hysteresis: 0.05, no_data_after: 600}")))
    config = load_config(path, {})
    assert config.alerts.for_ == 30 and config.profiles["my_lettuce"].extends == "lettuce"


@pytest.mark.parametrize("sensor_alert, expected", [
    ("{min: 2, max: 1}", "line 18: devices[0].sensors[1].alert: min (2) must be below max (1)"),
    ("{mni: 1}", "line 18: devices[0].sensors[1].alert.mni: unknown key (allowed: enabled, min, max, critical_min, critical_max, for, hysteresis, no_data_after). Did you mean 'min'?"),
    ("{for: -1}", "line 18: devices[0].sensors[1].alert.for: Input should be greater than or equal to 0"),
    ("{for: soon}", "line 18: devices[0].sensors[1].alert.for: Input should be a valid number"),
    ("{hysteresis: -0.1}", "line 18: devices[0].sensors[1].alert.hysteresis: Input should be greater than or equal to 0"),
    ("{no_data_after: x}", "line 18: devices[0].sensors[1].alert.no_data_after: Input should be a valid number"),
    ("{enabled: maybe}", "line 18: devices[0].sensors[1].alert.enabled: Input should be a valid boolean"),
    ("{critical_max: 1.0}", "line 18: devices[0].sensors[1].alert: alert ranges out of order: max (1.4) is above critical_max (1)"),
    ("{hysteresis: 1}", "line 18: devices[0].sensors[1].alert: hysteresis 1 is too wide"),
])
def test_sensor_alert_keys(tmp_path, sensor_alert, expected):
    found = issues(tmp_path, BASE.format(sensor_alert=sensor_alert))
    assert any(expected in issue for issue in found), found


@pytest.mark.parametrize("old, new, expected", [
    ('notify: ["ntfy://my-tank-topic"]', 'notify: ["ntfy://my-tank-topic", "nosuch://x:secret@host"]', "line 3: alerts.notify[1]: not a notification URL Apprise understands (scheme 'nosuch')"),
    ("for: 30", "for: -5", "line 4: alerts.for: Input should be greater than or equal to 0"),
    ("for: 30", "fro: 30", "line 4: alerts.fro: unknown key"),
    ("for: 30", "repeat_interval: often", "line 4: alerts.repeat_interval: Input should be a valid number"),
    ("for: 30", "no_data_severity: bad", "line 4: alerts.no_data_severity: Input should be 'warning' or 'critical'"),
    ("for: 30", "inactive_severity: 1", "line 4: alerts.inactive_severity: Input should be 'warning' or 'critical'"),
    ("for: 30", "send_resolved: sometimes", "line 4: alerts.send_resolved: Input should be a valid boolean"),
    ("for: 30", "retry: {attempts: 0}", "line 4: alerts.retry.attempts: Input should be greater than or equal to 1"),
    ("for: 30", "retry: {initial: 0}", "line 4: alerts.retry.initial: Input should be greater than 0"),
    ("for: 30", "timeout: 0", "line 4: alerts.timeout: Input should be greater than 0"),
    ("for: 30", "enabled: nope", "line 4: alerts.enabled: Input should be a valid boolean"),
    ("extends: lettuce", "extends: letuce", "line 7: profiles.my_lettuce.extends: unknown profile 'letuce' (known: basil, generic, lettuce, my_lettuce, pechay, strawberry, tomato). Did you mean 'lettuce'?"),
    # A URL without its scheme: what it starts with may be a user and password.
    ('notify: ["ntfy://my-tank-topic"]', 'notify: ["grower:secret@ntfy.example.org/tank"]', "line 3: alerts.notify[0]: not a notification URL: it has no scheme such as ntfy://"),
    # One URL without the list's dash: the error must not quote it (it may hold a password).
    ('notify: ["ntfy://my-tank-topic"]', 'notify: "json://grower:secret@10.0.0.2/hook"', "line 3: alerts.notify: a list of Apprise URLs, one per line starting with '- '"),
    ("ph: {min: 5.8, max: 6.0}", "pH: {min: 5.8}", "line 9: profiles.my_lettuce.sensors.pH: unknown sensor type 'pH'"),
    ("ph: {min: 5.8, max: 6.0}", "pH: {min: 5.8}", ". Did you mean 'ph'?"),
    ("extends: lettuce", "extend: lettuce", "line 7: profiles.my_lettuce.extend: unknown key"),
    ("ph: {min: 5.8, max: 6.0}", "ph: {min: 6.8, max: 6.0}", "line 9: profiles.my_lettuce.sensors.ph: min (6.8) must be below max (6)"),
    ("ph: {min: 5.8, max: 6.0}", "ph: {mn: 5.8}", "line 9: profiles.my_lettuce.sensors.ph.mn: unknown key"),
    ("ph: {min: 5.8, max: 6.0}", "ph: {hysteresis: -1}", "line 9: profiles.my_lettuce.sensors.ph.hysteresis: Input should be greater than or equal to 0"),
    ("      ph: {min: 5.8, max: 6.0}", "      ph: {min: 5.8}\n      salinity: {max: 3}", "line 10: profiles.my_lettuce.sensors.salinity: unknown sensor type 'salinity'"),
    ("profile: my_lettuce", "profile: my_letuce", "line 13: devices[0].profile: unknown profile 'my_letuce' (known: basil, generic, lettuce, my_lettuce, pechay, strawberry, tomato). Did you mean 'my_lettuce'?"),
])
def test_top_level_and_profile_keys(tmp_path, old, new, expected):
    text = BASE.format(sensor_alert="{min: 1.0}")
    assert old in text
    found = issues(tmp_path, text.replace(old, new, 1))
    assert any(expected in issue for issue in found), found
    assert not any("secret" in issue for issue in found)  # a URL's password is never echoed
