"""The hub's configuration: YAML -> validated, typed settings.

One file (config/smartanom.yaml by default) holds the server, storage, devices
with their sensors, and the plugin instances. Every problem found is reported
with file, line, key path, and what was expected; all problems at once, so an
installer fixes a file in one pass.
"""

from __future__ import annotations

import difflib
import logging
import os
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from smartanom.alerts import config as alerts_config
from smartanom.alerts.config import AlertsConfig, ProfileConfig, SensorAlertConfig
from smartanom.control.checks import check_control, check_outputs
from smartanom.control.config import ControlConfig
from smartanom.control.outputs import OutputKind, OutputOptions
from smartanom.calibration import config as calibration_config
from smartanom.auth import MIN_TOKEN_LENGTH, TOKEN_HINT, Token, TokensFile, parse_tokens_env
from smartanom.errors import ConfigError, ConfigIssue
from smartanom.platform import Platform, PlatformOptions
from smartanom.registry import Registry
from smartanom.sensortypes import BUILTIN_TYPES, SensorType
from smartanom.watchdog import WatchdogConfig
from smartanom.rollups import RollupsConfig
from smartanom.yamlfile import LineDict, LineList, format_path, load_yaml_file, locate

log = logging.getLogger("smartanom.config")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class RateLimitConfig(_Section):
    # A token bucket per connection: `per_second` on average, bursts up to `burst`.
    per_second: float = Field(200.0, gt=0)
    burst: int = Field(1000, ge=1)


class SendBufferConfig(_Section):
    # A client whose unsent bytes stay above max_bytes for max_seconds is closed
    # (4008); above 4 * max_bytes it is closed at once, which bounds memory.
    max_bytes: int = Field(1_048_576, ge=1024)
    max_seconds: float = Field(10.0, gt=0)


class SSLConfig(_Section):
    # PEM files, relative to the config file's directory.
    certfile: str
    keyfile: str


class ServerConfig(_Section):
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    # Browser origins allowed to open WebSockets besides the hub's own (same-origin).
    allowed_origins: list[str] = []
    # Largest WebSocket frame accepted from a client, in bytes.
    max_message_size: int = Field(65536, ge=256)
    # null turns the per-connection limit off.
    rate_limit: RateLimitConfig | None = RateLimitConfig()
    send_buffer: SendBufferConfig = SendBufferConfig()
    # Seconds between server pings, and how long to wait for the pong (0 turns pings off).
    ping_interval: float = Field(20.0, ge=0)
    ping_timeout: float = Field(20.0, ge=0)
    ssl: SSLConfig | None = None
    # Host names the hub answers to besides IP addresses, localhost and the
    # machine's own names (DNS-rebinding protection, docs/security.md); ["*"] = any.
    allowed_hosts: list[str] = []
    # Open connections (HTTP and WebSocket) at most, in total and from one client
    # address; one more gets a 503 and is closed (0 = no cap).
    max_connections: int = Field(1024, ge=0)
    max_connections_per_client: int = Field(256, ge=0)
    # Seconds an HTTP connection may stay open without sending a (next) request.
    idle_timeout: float = Field(10.0, gt=0)


class AuthConfig(_Section):
    enabled: bool = False
    # Tokens live outside this file: a YAML file (relative to this file's
    # directory) and/or an environment variable holding "role:token,...".
    tokens_file: str | None = None
    tokens_env: str | None = None
    # Seconds a client without a token in the URL or header has to send {"type": "auth"}.
    timeout: float = Field(10.0, gt=0)


class StorageConfig(_Section):
    path: str = "data/smartanom.db"
    # Accepted readings are written in batches at least this often (seconds):
    # the most a crash (kill -9, power cut) can lose.
    flush_interval: float = Field(0.5, gt=0, le=10)
    # Readings held in memory while the database cannot be written (disk full,
    # read-only); beyond this new readings are not stored (only broadcast) and counted as dropped.
    max_pending: int = Field(100_000, ge=100)
    # Where readings still in memory at a stop that cannot write them (disk full)
    # are saved, to be imported at the next start. Default: beside the database
    # (PATH.recovery); another file system survives a full disk better.
    recovery_path: str | None = None
    # Delete readings and status changes older than this many days (null keeps all).
    keep_days: float | None = Field(None, gt=0)
    # Seconds between retention purges (the first runs at start-up).
    purge_interval: float = Field(3600.0, gt=0)
    # Per-minute/hour/day aggregates for history queries, and their retention (core/rollups.py).
    rollups: RollupsConfig = RollupsConfig()


class SensorConfig(_Section):
    id: int = Field(ge=1)
    type: str
    unit: str | None = None
    name: str | None = None
    # Plausible range: a reading outside it is refused (a client gets INVALID_VALUE,
    # a plugin's is counted as bad), so one garbage value cannot wreck a chart.
    min: float | None = None
    max: float | None = None
    # Alert range and timing for this sensor, over its device's profile (core/alerts/).
    alert: SensorAlertConfig | None = None

    @model_validator(mode="after")
    def _range_in_order(self):
        if self.min is not None and self.max is not None and self.min >= self.max:
            raise ValueError(f"min ({self.min:g}) must be below max ({self.max:g})")
        return self

    @field_validator("type")
    @classmethod
    def _known_type(cls, value: str, info: ValidationInfo) -> str:
        # Built-in types plus those of the loaded plugins (register_sensor_types).
        known = (info.context or {}).get("sensor_types", BUILTIN_TYPES)
        if value not in known:
            hint = [value.lower()] if value.lower() in known else difflib.get_close_matches(value, known, n=1)
            did_you_mean = f" Did you mean '{hint[0]}'?" if hint else ""
            raise ValueError(
                f"'{value}' is not a known sensor type (known: {', '.join(known)}).{did_you_mean}"
            )
        return value


class DeviceConfig(_Section):
    id: int = Field(ge=1)
    name: str = Field(min_length=1)
    # Seconds without a reading after which the device is marked inactive.
    offline_after: float = Field(30.0, gt=0)
    # A plant profile (core/alerts/profiles.py or `profiles:`): alert ranges for its sensors.
    profile: str | None = None
    sensors: list[SensorConfig] = []

    @field_validator("sensors", mode="before")
    @classmethod
    def _no_sensors(cls, value):
        return [] if value is None else value


class _Root(_Section):
    server: ServerConfig = ServerConfig()
    storage: StorageConfig = StorageConfig()
    auth: AuthConfig = AuthConfig()
    watchdog: WatchdogConfig = WatchdogConfig()
    devices: list[DeviceConfig] = []
    plugins: list[dict[str, Any]] = []
    alerts: AlertsConfig = AlertsConfig()
    profiles: dict[str, ProfileConfig] = {}
    # Checked by core/control/checks.py against the output types plugins provide.
    outputs: list[dict[str, Any]] = []
    control: dict[str, Any] = {}
    calibration: calibration_config.CalibrationConfig = calibration_config.CalibrationConfig()
    derived: list[calibration_config.DerivedConfig] = []

    @model_validator(mode="before")
    @classmethod
    def _empty_sections_mean_defaults(cls, data):
        # `devices:` with nothing under it (all commented out) is an empty list, not an error.
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if v is not None}
        return data


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
    auth: AuthConfig = field(default_factory=AuthConfig)
    # Loaded from auth.tokens_file / auth.tokens_env (never from this file).
    tokens: list[Token] = field(default_factory=list)
    # Entries whose platform is provided by no loaded plugin (only when some plugin failed to load).
    unavailable: list[ConfigIssue] = field(default_factory=list)
    alerts: AlertsConfig = field(default_factory=AlertsConfig)
    profiles: dict[str, ProfileConfig] = field(default_factory=dict)
    outputs: list[OutputOptions] = field(default_factory=list)
    control: ControlConfig = field(default_factory=ControlConfig)
    calibration: calibration_config.CalibrationConfig = field(default_factory=calibration_config.CalibrationConfig)
    derived: list[calibration_config.DerivedConfig] = field(default_factory=list)
    # Built-in sensor types plus the loaded plugins' (register_sensor_types).
    sensor_types: dict[str, SensorType] = field(default_factory=lambda: dict(BUILTIN_TYPES))
    watchdog: WatchdogConfig = field(default_factory=WatchdogConfig)
    # Not errors, but probably not what the installer meant (PlatformOptions.config_warnings).
    warnings: list[ConfigIssue] = field(default_factory=list)

    def build_registry(self) -> Registry:
        registry = Registry.from_config(self.devices, self.sensor_types)
        for entry in self.derived:
            registry.sensors[entry.sensor].computed = True
        return registry


def load_config(
    path: str | Path,
    platforms: dict[str, Platform],
    *,
    failed_plugins: typing.Collection[str] = (),
    providers: typing.Mapping[str, str] = {},
    sensor_types: typing.Mapping[str, SensorType] | None = None,
    output_kinds: typing.Mapping[str, OutputKind] = {},
) -> HubConfig:
    """Read and validate a config file. Raises ConfigError listing every problem.

    `failed_plugins` names plugins that could not be loaded: an entry naming an
    unknown platform is then set aside in `HubConfig.unavailable` (the hub runs
    without it) instead of being an error, since the platform may be theirs.
    An entry whose options validator crashes is set aside there too.
    `providers` maps platform names to the plugin providing each, for reports.
    `sensor_types` is the catalog `type:` may name (default: the built-in types).
    `output_kinds` are the output types plugins provide (`type:` under `outputs:`).
    """
    sensor_types = dict(sensor_types if sensor_types is not None else BUILTIN_TYPES)
    context = {"sensor_types": sensor_types}
    filename = str(path)
    data = load_yaml_file(path)
    if data is None:
        data = LineDict()
        data.line, data.key_lines = 0, {}
    if not isinstance(data, dict):
        raise ConfigError([ConfigIssue(filename, getattr(data, "line", 1), "", "expected a mapping of sections (server, storage, devices, plugins) at the top level")])

    issues: list[ConfigIssue] = []
    try:
        root = _Root.model_validate(data, context=context)
    except ValidationError as exc:
        # Report these, and go on checking what can be checked without a valid
        # root: ids, and plugin entries against the devices that are valid.
        issues.extend(_issues(exc, data, filename, _Root))
        root = None
    raw_devices = data.get("devices") if isinstance(data.get("devices"), list) else []
    devices = root.devices if root else _valid_devices(raw_devices, context)
    # Devices that exist in the file but have errors: plugin entries naming them
    # are not also told the device is undefined.
    broken_devices = {d.get("id") for d in raw_devices if isinstance(d, dict)} - {d.id for d in devices}
    _check_unique(data, filename, issues, raw_devices)
    registry = Registry.from_config(devices, sensor_types)
    outputs, output_ids = check_outputs(data, filename, issues, registry, output_kinds)
    control = check_control(data, filename, issues, registry, outputs, output_ids)
    if root is None:
        issues.extend(calibration_config.check_valid_parts(data, registry, filename))
        _check_plugins(data, filename, issues, registry, platforms, broken_devices, None, failed_plugins, providers)
        raise ConfigError(sorted(issues, key=lambda i: i.line))

    config = HubConfig(
        filename, root.server, root.storage, root.devices, auth=root.auth, calibration=root.calibration,
        derived=root.derived, sensor_types=sensor_types, watchdog=root.watchdog, alerts=root.alerts, profiles=root.profiles,
        outputs=outputs, control=control or ControlConfig(),
    )
    alerts_config.check(root.devices, root.profiles, data, filename, issues)
    issues.extend(calibration_config.check(root.calibration, root.derived, registry, data, filename))
    config_dir = Path(filename).parent
    if root.server.ssl is not None:
        for key in ("certfile", "keyfile"):
            value = getattr(root.server.ssl, key)
            resolved = config_dir / value
            if not resolved.is_file():
                loc = ("server", "ssl", key)
                issues.append(ConfigIssue(filename, locate(data, loc), format_path(loc), f"no such file: {resolved}"))
            setattr(root.server.ssl, key, str(resolved))
    if root.auth.enabled:
        config.tokens = _load_tokens(root.auth, data, filename, issues)

    _check_plugins(data, filename, issues, registry, platforms, broken_devices, config, failed_plugins, providers)

    if issues:
        raise ConfigError(sorted(issues, key=lambda i: i.line))
    return config


def _valid_devices(raw_devices: list, context: dict) -> list[DeviceConfig]:
    valid = []
    for raw in raw_devices:
        try:
            valid.append(DeviceConfig.model_validate(raw, context=context))
        except ValidationError:
            pass
    return valid


def _check_plugins(data, filename, issues, registry, platforms, broken_devices, config, failed_plugins, providers) -> None:
    """Validate each `plugins:` entry against its platform; valid ones go into `config.plugins`
    (with config=None, only the problems are collected)."""
    raw_plugins = data.get("plugins")
    if not isinstance(raw_plugins, list):
        return  # the schema error about it is already reported
    claimed: dict[str, int] = {}  # resource an entry opens exclusively -> the first entry's index
    for index, entry in enumerate(raw_plugins):
        if not isinstance(entry, dict):
            continue  # reported by the schema
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
            if failed_plugins and config is not None:
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
            if config is not None:
                config.unavailable.append(ConfigIssue(filename, line, format_path(loc), f"platform '{name}'{by}: its options validator crashed ({type(exc).__name__}: {exc}); a bug in the plugin, this entry is disabled"))
            continue
        if platform.needs_device and options.device is None:
            issues.append(ConfigIssue(filename, line, format_path(loc), f"platform '{name}' needs 'device: ID', the device whose sensors it feeds"))
            continue
        if options.device is not None and registry.device(options.device) is None:
            if options.device in broken_devices:
                continue  # its own errors are reported where it is defined
            known = ", ".join(str(d) for d in registry.devices) or "none"
            issues.append(ConfigIssue(filename, locate(data, loc + ("device",)), format_path(loc + ("device",)), f"device {options.device} is not defined under 'devices:' (defined: {known})"))
            continue
        for key, resource in options.exclusive_resources().items():
            first = claimed.setdefault(resource, index)
            if first != index:
                issues.append(ConfigIssue(filename, locate(data, loc + (key,)), format_path(loc + (key,)),
                                          f"{resource} is already used by plugins[{first}]: one entry per port (two readers would each get part of the data)"))
        if config is not None:
            config.plugins.append(PluginInstanceConfig(index, platform, options, line))
            for where, message in options.config_warnings():
                config.warnings.append(ConfigIssue(filename, locate(data, loc + where), format_path(loc + where), message))


def _load_tokens(auth: AuthConfig, data, filename: str, issues: list[ConfigIssue]) -> list[Token]:
    """Tokens from auth.tokens_file and auth.tokens_env; problems go to `issues`."""
    tokens: list[Token] = []
    if auth.tokens_file is None and auth.tokens_env is None:
        loc = ("auth", "enabled")
        issues.append(ConfigIssue(filename, locate(data, loc), format_path(loc), "auth is on but no tokens are configured: set auth.tokens_file (a YAML file of tokens) or auth.tokens_env (an environment variable); tokens never go in this file"))
        return tokens
    if auth.tokens_file is not None:
        path = Path(filename).parent / auth.tokens_file
        loc = ("auth", "tokens_file")
        if path.is_dir():
            issues.append(ConfigIssue(filename, locate(data, loc), format_path(loc), f"{path} is a directory; auth.tokens_file names a YAML file of tokens"))
        elif not path.is_file():
            issues.append(ConfigIssue(filename, locate(data, loc), format_path(loc), f"no such file: {path}"))
        else:
            try:
                secrets = load_yaml_file(path)
                entries = TokensFile.model_validate(secrets).tokens
            except ConfigError as exc:
                issues.extend(exc.issues)
            except ValidationError as exc:
                for issue in _issues(exc, secrets, str(path), TokensFile):
                    if issue.path.endswith(".token"):  # never echo a secret back
                        issue = ConfigIssue(issue.file, issue.line, issue.path, f"a token must be a string of at least {MIN_TOKEN_LENGTH} characters; {TOKEN_HINT}")
                    issues.append(issue)
            else:
                tokens += [Token(e.name, e.role, e.token) for e in entries]
    if auth.tokens_env is not None:
        loc = ("auth", "tokens_env")
        value = os.environ.get(auth.tokens_env)
        if value is None:
            if not tokens:
                issues.append(ConfigIssue(filename, locate(data, loc), format_path(loc), f"environment variable {auth.tokens_env} is not set (expected 'read:TOKEN,write:TOKEN')"))
        else:
            try:
                tokens += parse_tokens_env(auth.tokens_env, value)
            except ValueError as exc:
                issues.append(ConfigIssue(filename, locate(data, loc), format_path(loc), str(exc)))
    if not issues and not tokens:
        issues.append(ConfigIssue(filename, locate(data, ("auth",)), "auth", "auth is on but no tokens were found"))
    seen: set[str] = set()
    for token in tokens:
        if token.secret in seen:
            issues.append(ConfigIssue(filename, locate(data, ("auth",)), "auth", f"token {token.name!r} is used twice; give each client its own"))
        seen.add(token.secret)
    return tokens


def reload_tokens(config: HubConfig) -> list[Token]:
    """Read auth.tokens_file / auth.tokens_env again (SIGHUP). Raises ConfigError."""
    data = load_yaml_file(config.file)
    issues: list[ConfigIssue] = []
    tokens = _load_tokens(config.auth, data if isinstance(data, dict) else {}, config.file, issues)
    if issues:
        raise ConfigError(issues)
    return tokens


def _check_unique(data, filename: str, issues: list[ConfigIssue], raw_devices: list) -> None:
    device_seen: dict[int, int] = {}
    sensor_seen: dict[int, str] = {}
    for d_index, device in enumerate(raw_devices):
        if not isinstance(device, dict):
            continue
        loc = ("devices", d_index, "id")
        device_id = device.get("id")
        if _is_int(device_id):
            if device_id in device_seen:
                issues.append(ConfigIssue(filename, locate(data, loc), format_path(loc), f"device id {device_id} is already used by devices[{device_seen[device_id]}]"))
            device_seen.setdefault(device_id, d_index)
        sensors = device.get("sensors")
        for s_index, sensor in enumerate(sensors if isinstance(sensors, list) else []):
            sensor_id = sensor.get("id") if isinstance(sensor, dict) else None
            if not _is_int(sensor_id):
                continue
            loc = ("devices", d_index, "sensors", s_index, "id")
            if sensor_id in sensor_seen:
                issues.append(ConfigIssue(filename, locate(data, loc), format_path(loc), f"sensor id {sensor_id} is already used by {sensor_seen[sensor_id]} (sensor ids are unique across the hub)"))
            sensor_seen.setdefault(sensor_id, f"devices[{d_index}].sensors[{s_index}]")


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


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
    if isinstance(value, bool) and kind != "bool_type":
        return f"{msg} (found: {str(value).lower()}; YAML reads yes/no/on/off/true/false as a boolean)"
    if isinstance(value, str) and kind in ("int_type", "float_type") and _looks_numeric(value):
        return f"{msg} (found: {value!r}); remove the quotes"
    if isinstance(value, (str, int, float)) or value is None:
        return f"{msg} (found: {value!r}){_nearest_valid(error, value)}"
    if isinstance(value, dict):
        return f"{msg} (found: a mapping of keys)"
    if isinstance(value, list):
        return f"{msg} (found: a list)"
    return f"{msg} (found: {type(value).__name__})"


def _nearest_valid(error: dict, value) -> str:
    """'. Did you mean X?' for a value that is almost one of the allowed ones or just out of range."""
    kind, ctx = error["type"], error.get("ctx") or {}
    if kind == "literal_error" and "expected" in ctx:
        choices = re.findall(r"'([^']*)'|(-?\d+(?:\.\d+)?)", ctx["expected"])
        texts = [quoted or number for quoted, number in choices]
        if isinstance(value, str):
            folded = [c for c in texts if c.lower() == value.lower()]
            hint = folded or difflib.get_close_matches(value, texts, n=1, cutoff=0.5)
        elif _is_int(value) or isinstance(value, float):
            numbers = [float(n) for q, n in choices if n]
            hint = [min(numbers, key=lambda n: abs(n - value))] if numbers else []
            hint = [f"{h:g}" for h in hint]
        else:
            hint = []
        return f". Did you mean {hint[0]}?" if hint else ""
    bound = {"less_than_equal": "le", "greater_than_equal": "ge"}.get(kind)
    if bound and bound in ctx and (_is_int(value) or isinstance(value, float)):
        return f"; the nearest valid value is {ctx[bound]:g}"
    return ""


def _looks_numeric(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _allowed_keys(model: type[BaseModel], loc: tuple) -> list[str]:
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        fld = _field(current, part) if isinstance(current, type) and issubclass(current, BaseModel) else None
        if fld is None:
            return []
        current = _inner_model(fld.annotation)
        if current is None:
            return []
    if isinstance(current, type) and issubclass(current, BaseModel):
        return [f.alias or name for name, f in current.model_fields.items()]  # `for` rather than for_
    return []


def _field(model: type[BaseModel], key: str):
    """The field that YAML key `key` fills (by alias first, as in `for:`)."""
    return next((f for name, f in model.model_fields.items() if f.alias == key), None) or model.model_fields.get(key)


def _inner_model(annotation) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _inner_model(arg)
        if found is not None:
            return found
    return None
