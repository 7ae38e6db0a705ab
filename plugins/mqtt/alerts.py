"""Alerts on MQTT: one Home Assistant binary_sensor (device class `problem`) per alert rule.

Each condition the hub watches (`ctx.alert_rules()`: a sensor out of range, a
sensor silent, a device inactive) gets a retained discovery config under
`<prefix>/binary_sensor/<node_id>/<key>/config` and a retained state on
`<topic_prefix>/<hub_id>/alert/<key>/state`: `{"problem": "ON"|"OFF", ...}` with
the alert's fields as attributes. ON while the alert fires or is acknowledged,
OFF once it resolves. A key raised by another subsystem (calibration due, ...)
is announced the first time it appears. Pure functions, no I/O.
"""

from __future__ import annotations

import json

from smartanom.builtin.mqtt.discovery import node_id
from smartanom.builtin.mqtt.messages import Message, Topics

_COMPACT = (",", ":")


def state_topic(topics: Topics, key: str) -> str:
    return f"{topics.base}/alert/{key}/state"


def config_topic(prefix: str, hub_id: str, key: str) -> str:
    return f"{prefix}/binary_sensor/{node_id(hub_id)}/{key}/config"


def rule_config(rule: dict, hub_id: str, topics: Topics, version: str) -> dict:
    """The discovery payload of one rule (Home Assistant's MQTT binary_sensor)."""
    state = state_topic(topics, rule["key"])
    config = {
        "name": rule["name"],
        "unique_id": f"{node_id(hub_id)}_alert_{rule['key']}",
        "device_class": "problem",
        "state_topic": state,
        "value_template": "{{ value_json.problem }}",
        "payload_on": "ON",
        "payload_off": "OFF",
        "json_attributes_topic": state,
        "availability": [{"topic": topics.availability}],
        "origin": {"name": "SmarTanom Hub", "sw_version": version},
    }
    if rule.get("device_id") is not None:
        config["device"] = {"identifiers": [f"{node_id(hub_id)}_device_{rule['device_id']}"]}
    return config


def discovery_messages(rules: list[dict], hub_id: str, prefix: str, topics: Topics, version: str) -> list[Message]:
    return [
        Message(config_topic(prefix, hub_id, rule["key"]), json.dumps(rule_config(rule, hub_id, topics, version)), 1, True)
        for rule in rules
    ]


def state_message(topics: Topics, key: str, alert: dict | None, qos: int) -> Message:
    """The rule's state: ON with the alert's fields while it is active, else OFF. Retained."""
    active = alert is not None and alert.get("state") != "resolved"
    payload = {"problem": "ON" if active else "OFF", **(alert or {})}
    return Message(state_topic(topics, key), json.dumps(payload, separators=_COMPACT), qos, True)


def snapshot(rules: list[dict], active: list[dict], topics: Topics, qos: int) -> list[Message]:
    """Every rule's current state, for a (re)connection."""
    by_key = {alert["key"]: alert for alert in active}
    keys = [rule["key"] for rule in rules] + [key for key in by_key if key not in {r["key"] for r in rules}]
    return [state_message(topics, key, by_key.get(key), qos) for key in keys]
