"""The hub's configuration: YAML -> validated, typed settings.

One file (config/smartanom.yaml by default) holds the server, storage, devices
with their sensors, and the plugin instances. Every problem found is reported
with file, line, key path, and what was expected; all problems at once, so an
installer fixes a file in one pass.
"""

from __future__ import annotations

import difflib
import logging
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from core.errors import ConfigError, ConfigIssue
from core.platform import Platform, PlatformOptions
from core.registry import SENSOR_TYPES, Registry
from core.yamlfile import LineDict, LineList, format_path, load_yaml_file, locate

log = logging.getLogger("smartanom.config")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class ServerConfig(_Section):
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    # Browser origins allowed to open WebSockets besides the hub's own (same-origin).
    allowed_origins: list[str] = []
    # Largest WebSocket frame accepted from a client, in bytes.
    max_message_size: int = Field(65536, ge=256)


class StorageConfig(_Section):
    path: str = "data/smartanom.db"
    # Accepted readings are written in batches at least this often (seconds):
    # the most a crash (kill -9, power cut) can lose.
    flush_interval: float = Field(0.5, gt=0, le=10)


class SensorConfig(_Section):
    id: int = Field(ge=1)
    type: str
    unit: str | None = None
    name: str | None = None

    @field_validator("type")
    @classmethod
    def _known_type(cls, value: str) -> str:
        if value not in SENSOR_TYPES:
            hint = difflib.get_close_matches(value, SENSOR_TYPES, n=1)
            did_you_mean = f" Did you mean '{hint[0]}'?" if hint else ""
            raise ValueError(
                f"'{value}' is not a known sensor type (known: {', '.join(SENSOR_TYPES)}).{did_you_mean}"
            )
        return value


class DeviceConfig(_Section):
    id: int = Field(ge=1)
    name: str = Field(min_length=1)
    # Seconds without a reading after which the device is marked inactive.
    offline_after: float = Field(30.0, gt=0)
    sensors: list[SensorConfig] = []


class _Root(_Section):
    server: ServerConfig = ServerConfig()
    storage: StorageConfig = StorageConfig()
    devices: list[DeviceConfig] = []
    plugins: list[dict[str, Any]] = []


@dataclass
class PluginInstanceConfig:
    """One validated entry of `plugins:`."""

    index: int
    platform: Platform
    options: PlatformOptions
    line: int

    @property
    def label(self) -> str:
        name = self.options.name or f"{self.platform.name}#{self.index}"
        return name


@dataclass
class HubConfig:
    file: str
    server: ServerConfig
    storage: StorageConfig
    devices: list[DeviceConfig]
    plugins: list[PluginInstanceConfig] = field(default_factory=list)
    # Entries whose platform is provided by no loaded plugin (only when some plugin failed to load).
    unavailable: list[ConfigIssue] = field(default_factory=list)

    def build_registry(self) -> Registry:
        return Registry.from_config(self.devices)


def load_config(
    path: str | Path,
    platforms: dict[str, Platform],
    *,
    failed_plugins: typing.Collection[str] = (),
    providers: typing.Mapping[str, str] = {},
) -> HubConfig:
    """Read and validate a config file. Raises ConfigError listing every problem.

    `failed_plugins` names plugins that could not be loaded: an entry naming an
    unknown platform is then set aside in `HubConfig.unavailable` (the hub runs
    without it) instead of being an error, since the platform may be theirs.
    An entry whose options validator crashes is set aside there too.
    `providers` maps platform names to the plugin providing each, for reports.
    """
    filename = str(path)
    data = load_yaml_file(path)
    if data is None:
        data = LineDict()
        data.line, data.key_lines = 0, {}
    if not isinstance(data, dict):
        raise ConfigError([ConfigIssue(filename, getattr(data, "line", 1), "", "expected a mapping of sections (server, storage, devices, plugins) at the top level")])

    issues: list[ConfigIssue] = []
    try:
        root = _Root.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(sorted(_issues(exc, data, filename, _Root), key=lambda i: i.line)) from None

    _check_unique(data, filename, issues, root)
    registry = Registry.from_config(root.devices)
    config = HubConfig(filename, root.server, root.storage, root.devices)

    raw_plugins = data.get("plugins") or []
    for index, entry in enumerate(root.plugins):
        loc = ("plugins", index)
        line = locate(data, loc)
        name = entry.get("platform")
        if not isinstance(name, str):
            issues.append(ConfigIssue(filename, line, format_path(loc + ("platform",)), f"every plugin entry needs 'platform: NAME' (available: {', '.join(sorted(platforms)) or 'none'})"))
            continue
        platform = platforms.get(name)
        if platform is None:
            message = f"unknown platform '{name}' (available: {', '.join(sorted(platforms)) or 'none'})"
            hint = difflib.get_close_matches(name, platforms, n=1)
            if hint:
                message += f". Did you mean '{hint[0]}'?"
            issue = ConfigIssue(filename, locate(data, loc + ("platform",)), format_path(loc + ("platform",)), message)
            if failed_plugins:
                config.unavailable.append(ConfigIssue(issue.file, issue.line, issue.path, issue.message + f"; plugins that failed to load: {', '.join(failed_plugins)}"))
            else:
                issues.append(issue)
            continue
        try:
            options = platform.options.model_validate(raw_plugins[index], context={"registry": registry, "config_dir": Path(filename).parent})
        except ValidationError as exc:
            issues.extend(_issues(exc, data, filename, platform.options, prefix=loc))
            continue
        except Exception as exc:
            # A validator that raises anything but ValueError/AssertionError is a
            # bug in the plugin, not in the file: run without this entry.
            provider = providers.get(name, "")
            by = f" of {provider}" if provider else ""
            log.error("Options validator of platform '%s'%s raised; entry plugins[%d] disabled", name, by, index, exc_info=exc)
            config.unavailable.append(ConfigIssue(filename, line, format_path(loc), f"platform '{name}'{by}: its options validator crashed ({type(exc).__name__}: {exc}); a bug in the plugin, this entry is disabled"))
            continue
        if platform.needs_device and options.device is None:
            issues.append(ConfigIssue(filename, line, format_path(loc), f"platform '{name}' needs 'device: ID', the device whose sensors it feeds"))
            continue
        if options.device is not None and registry.device(options.device) is None:
            known = ", ".join(str(d) for d in registry.devices) or "none"
            issues.append(ConfigIssue(filename, locate(data, loc + ("device",)), format_path(loc + ("device",)), f"device {options.device} is not defined under 'devices:' (defined: {known})"))
            continue
        config.plugins.append(PluginInstanceConfig(index, platform, options, line))

    if issues:
        raise ConfigError(sorted(issues, key=lambda i: i.line))
    return config


def _check_unique(data, filename: str, issues: list[ConfigIssue], root: _Root) -> None:
    device_seen: dict[int, int] = {}
    sensor_seen: dict[int, str] = {}
    for d_index, device in enumerate(root.devices):
        loc = ("devices", d_index, "id")
        if device.id in device_seen:
            issues.append(ConfigIssue(filename, locate(data, loc), format_path(loc), f"device id {device.id} is already used by devices[{device_seen[device.id]}]"))
        device_seen.setdefault(device.id, d_index)
        for s_index, sensor in enumerate(device.sensors):
            loc = ("devices", d_index, "sensors", s_index, "id")
            where = f"devices[{d_index}].sensors[{s_index}]"
            if sensor.id in sensor_seen:
                issues.append(ConfigIssue(filename, locate(data, loc), format_path(loc), f"sensor id {sensor.id} is already used by {sensor_seen[sensor.id]} (sensor ids are unique across the hub)"))
            sensor_seen.setdefault(sensor.id, where)


def _issues(exc: ValidationError, data, filename: str, model: type[BaseModel], prefix: tuple = ()) -> list[ConfigIssue]:
    issues = []
    for error in exc.errors(include_url=False):
        loc = prefix + tuple(p for p in error["loc"] if not (isinstance(p, str) and "[" in p))
        issues.append(ConfigIssue(filename, locate(data, loc), format_path(loc), _message(error, model, loc[len(prefix):])))
    return issues


def _message(error: dict, model: type[BaseModel], loc: tuple) -> str:
    kind, msg = error["type"], error["msg"]
    if kind == "missing":
        return "required key is missing"
    if kind == "extra_forbidden":
        allowed = _allowed_keys(model, loc[:-1])
        key = str(loc[-1]) if loc else "?"
        text = "unknown key"
        if allowed:
            hint = difflib.get_close_matches(key, allowed, n=1)
            text += f" (allowed: {', '.join(allowed)})"
            if hint:
                text += f". Did you mean '{hint[0]}'?"
        return text
    if msg.startswith("Value error, "):
        return msg[len("Value error, "):]
    value = error.get("input")
    if isinstance(value, (str, int, float, bool)) or value is None:
        return f"{msg} (found: {value!r})"
    return f"{msg} (found: {type(value).__name__})"


def _allowed_keys(model: type[BaseModel], loc: tuple) -> list[str]:
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        fld = current.model_fields.get(part) if isinstance(current, type) and issubclass(current, BaseModel) else None
        if fld is None:
            return []
        current = _inner_model(fld.annotation)
        if current is None:
            return []
    if isinstance(current, type) and issubclass(current, BaseModel):
        return list(current.model_fields)
    return []


def _inner_model(annotation) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _inner_model(arg)
        if found is not None:
            return found
    return None
