"""YAML options of a `platform: mqtt` entry (docs/mqtt.md describes each key).

Secrets never live inline: the broker password comes from an environment
variable or a file next to the config, read here so that a missing one is a
config error with file and line, not a failure at the first connection.
"""

from __future__ import annotations

import difflib
import os
import re
import ssl
import zoneinfo
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, SecretStr, ValidationInfo, field_validator, model_validator

from smartanom import PlatformOptions

# Safe in a topic level and in a Home Assistant node_id: no '/', '+', '#' or spaces.
_ID = re.compile(r"^[A-Za-z0-9_-]+$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


def _config_path(value: str | None, info: ValidationInfo) -> Path | None:
    """A path from YAML, relative to the config file's directory; it must exist."""
    if value is None:
        return None
    path = Path(value)
    if not path.is_absolute():
        path = Path((info.context or {}).get("config_dir", ".")) / path
    if not path.is_file():
        raise ValueError(f"file {str(path)!r} does not exist")
    return path


class TlsOptions(_Strict):
    ca_file: str | None = Field(None, description="CA bundle that signed the broker's certificate (default: the system's)")
    cert_file: str | None = Field(None, description="client certificate, for brokers that require one")
    key_file: str | None = Field(None, description="the client certificate's private key")
    insecure: bool = Field(False, description="skip checking the broker's host name against its certificate")

    @field_validator("ca_file", "cert_file", "key_file")
    @classmethod
    def _exists(cls, value, info: ValidationInfo):
        path = _config_path(value, info)
        return None if path is None else str(path)

    @model_validator(mode="after")
    def _usable(self):
        if self.key_file and not self.cert_file:
            raise ValueError("key_file needs cert_file (the client certificate it belongs to)")
        # Load the files now, so a wrong one is a config error rather than a retry loop.
        try:
            context = ssl.create_default_context(cafile=self.ca_file)
        except (ssl.SSLError, OSError) as exc:
            raise ValueError(f"cannot load ca_file: {exc}") from None
        try:
            if self.cert_file:
                context.load_cert_chain(self.cert_file, self.key_file)
        except (ssl.SSLError, OSError) as exc:
            raise ValueError(f"cannot load cert_file/key_file: {exc}") from None
        return self


class BrokerOptions(_Strict):
    host: str = Field("127.0.0.1", min_length=1)
    port: int = Field(1883, ge=1, le=65535)
    client_id: str | None = Field(None, min_length=1, max_length=64, description="default smartanom-<hub_id>")
    persistent_session: bool = Field(
        False, description="the broker keeps this hub's subscriptions and queues QoS 1 messages for it while it is away (for a central hub)"
    )
    keepalive: int = Field(30, ge=5, le=3600, description="seconds between pings; a dead link is noticed within 1.5x this")
    username: str | None = None
    password_env: str | None = Field(None, description="environment variable holding the password")
    password_file: str | None = Field(None, description="file holding the password (relative to the config file)")
    tls: TlsOptions | None = None

    _password: SecretStr | None = PrivateAttr(None)

    @field_validator("password_file")
    @classmethod
    def _file_exists(cls, value, info: ValidationInfo):
        path = _config_path(value, info)
        return None if path is None else str(path)

    @model_validator(mode="after")
    def _read_password(self):
        if self.password_env and self.password_file:
            raise ValueError("give either password_env or password_file, not both")
        if (self.password_env or self.password_file) and not self.username:
            raise ValueError("a password needs a username")
        if self.password_env:
            value = os.environ.get(self.password_env)
            if value is None:
                raise ValueError(f"password_env: environment variable {self.password_env} is not set")
            self._password = SecretStr(value)
        elif self.password_file:
            # Docker/systemd secrets style: the whole file is the password; a trailing newline is not part of it.
            self._password = SecretStr(Path(self.password_file).read_text().rstrip("\r\n"))
        return self

    @property
    def password(self) -> str | None:
        return self._password.get_secret_value() if self._password is not None else None


class HomeAssistantOptions(_Strict):
    discovery: bool = Field(True, description="publish MQTT discovery messages for every sensor")
    prefix: str = Field("homeassistant", min_length=1, description="Home Assistant's discovery prefix")
    override_minutes: float = Field(60.0, gt=0, description="how long a switch turned in Home Assistant overrides the hub's rule")


class Subscription(_Strict):
    topic: str = Field(min_length=1, description="exact MQTT topic (no wildcards)")
    sensor: int = Field(ge=1, description="the hub sensor that receives the value")
    json_path: str | None = Field(
        None, min_length=1, description="dotted path to the number in a JSON payload (e.g. AM2301.Temperature); none: the payload is a plain number"
    )
    timestamp_path: str | None = Field(None, min_length=1, description="dotted path to an ISO 8601 time in the JSON payload (default: time of arrival)")
    timezone: str | None = Field(None, description="IANA zone (Europe/Madrid) of a timestamp without an offset, e.g. Tasmota's local `Time`; default UTC")

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str | None):
        if value is not None:
            try:
                zoneinfo.ZoneInfo(value)
            except (zoneinfo.ZoneInfoNotFoundError, ValueError):
                hint = difflib.get_close_matches(value, zoneinfo.available_timezones(), n=1)
                raise ValueError(f"unknown time zone {value!r}" + (f". Did you mean {hint[0]}?" if hint else " (an IANA name such as Europe/Madrid)")) from None
        return value

    @field_validator("topic")
    @classmethod
    def _exact(cls, value: str):
        if "+" in value or "#" in value:
            raise ValueError("wildcards (+, #) are not allowed: each topic maps to one sensor")
        return value

    @field_validator("sensor")
    @classmethod
    def _known(cls, value: int, info: ValidationInfo):
        _check_sensor(value, info)
        return value

    @model_validator(mode="after")
    def _timestamp_needs_json(self):
        if self.timestamp_path and not self.json_path:
            raise ValueError("timestamp_path needs json_path (a plain-number payload has no timestamp)")
        if self.timezone and not self.timestamp_path:
            raise ValueError("timezone applies to the payload's timestamp: it needs timestamp_path (without one, readings are stamped on arrival)")
        return self


class EdgeHub(_Strict):
    hub_id: str = Field(description="the edge hub's hub_id")
    # edge sensor id -> this hub's sensor id (sensor ids are unique per hub, not per farm).
    sensors: dict[int, int] = Field(min_length=1)

    @field_validator("hub_id")
    @classmethod
    def _id(cls, value: str):
        return _check_id(value)

    @field_validator("sensors")
    @classmethod
    def _known(cls, value: dict[int, int], info: ValidationInfo):
        for local in value.values():
            _check_sensor(local, info)
        return value


class MqttOptions(PlatformOptions):
    hub_id: str = Field(description="this hub's name on the broker: smartanom/<hub_id>/...")
    broker: BrokerOptions = BrokerOptions()
    topic_prefix: str = Field("smartanom", min_length=1)
    qos: int = Field(1, ge=0, le=2, description="QoS of readings and status messages")
    retain: bool = Field(False, description="retain reading messages")
    retain_status: bool = Field(True, description="retain device status messages")
    publish_readings: bool = True
    publish_status: bool = True
    publish_alerts: bool = Field(True, description="alert states on <topic_prefix>/<hub_id>/alert/<key>/state (and binary_sensors with discovery)")
    queue_size: int = Field(10000, ge=1, le=1_000_000, description="messages kept while the broker is away; the oldest are dropped beyond")
    reconnect_min_delay: float = Field(1.0, gt=0, le=60)
    reconnect_max_delay: float = Field(60.0, gt=0, le=3600)
    homeassistant: HomeAssistantOptions | None = None
    subscribe: list[Subscription] = []
    accept_retained: bool = Field(False, description="take in retained messages replayed at subscribe time (stale or already stored, by default ignored)")
    edge_hubs: list[EdgeHub] = []

    @field_validator("hub_id")
    @classmethod
    def _id(cls, value: str):
        return _check_id(value)

    @field_validator("topic_prefix")
    @classmethod
    def _prefix(cls, value: str):
        if "+" in value or "#" in value or value.startswith("/") or value.endswith("/"):
            raise ValueError("topic_prefix must be a plain topic such as 'smartanom' or 'farm/smartanom' (no wildcards, no leading or trailing '/')")
        return value

    @model_validator(mode="after")
    def _no_loops(self):
        if self.reconnect_max_delay < self.reconnect_min_delay:
            raise ValueError("reconnect_max_delay must not be below reconnect_min_delay")
        own = f"{self.topic_prefix}/{self.hub_id}/"
        for sub in self.subscribe:
            if sub.topic.startswith(own):
                raise ValueError(f"subscribe: topic {sub.topic!r} is this hub's own topic ({own}...): it would feed back into itself")
        for edge in self.edge_hubs:
            if edge.hub_id == self.hub_id:
                raise ValueError(f"edge_hubs: {edge.hub_id!r} is this hub's own hub_id: it would feed back into itself")
        return self

    def config_warnings(self) -> list[tuple[tuple, str]]:
        found = []
        if self.homeassistant is not None and self.homeassistant.discovery and not self.publish_readings:
            found.append((("publish_readings",), "publish_readings is false, so no sensor is announced to Home Assistant "
                                                  "(its entities would never get a value); remove homeassistant: or publish readings"))
        for index, sub in enumerate(self.subscribe):
            if sub.timestamp_path and sub.timestamp_path.split(".")[-1] == "Time" and sub.timezone is None:
                found.append((("subscribe", index, "timestamp_path"),
                              "Tasmota's Time is the device's local time without an offset, read here as UTC: "
                              "set timezone: (e.g. Europe/Madrid), or drop timestamp_path to stamp readings on arrival"))
        return found


def _check_id(value: str) -> str:
    if not _ID.match(value):
        raise ValueError(f"{value!r} may only contain letters, digits, '_' and '-' (it becomes an MQTT topic level)")
    return value


def _check_sensor(sensor_id: int, info: ValidationInfo) -> None:
    registry = (info.context or {}).get("registry")
    if registry is not None and registry.sensor(sensor_id) is None:
        known = ", ".join(str(s) for s in registry.sensors) or "none"
        raise ValueError(f"sensor {sensor_id} is not defined under 'devices:' (defined: {known})")
