"""YAML of alerting: the top-level `alerts:` and `profiles:`, a sensor's `alert:`.

The models are strict like the rest of the config (core/config.py maps their
errors to file and line). Checks that need more than one section (a device's
profile exists, a sensor's merged ranges are in order) are in `check()`.
"""

from __future__ import annotations

import difflib
import logging
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from smartanom.alerts.profiles import BUILTIN
from smartanom.errors import ConfigIssue
from smartanom.registry import SENSOR_TYPES
from smartanom.yamlfile import format_path, locate

Severity = Literal["warning", "critical"]

# The pending period when neither the sensor nor `alerts:` sets one (seconds).
DEFAULT_FOR = 60.0


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


def _in_order(model, pairs) -> None:
    """min < max for each (low key, high key) pair that is set."""
    for low, high in pairs:
        lo, hi = getattr(model, low), getattr(model, high)
        if lo is not None and hi is not None and lo >= hi:
            raise ValueError(f"{low} ({lo:g}) must be below {high} ({hi:g})")


class SensorAlertConfig(_Strict):
    """A sensor's `alert:`: overrides its device's profile for this sensor."""

    enabled: bool = True
    # The good range: outside it is a warning.
    min: float | None = Field(None, strict=False)
    max: float | None = Field(None, strict=False)
    # The critical range: outside it is critical.
    critical_min: float | None = Field(None, strict=False)
    critical_max: float | None = Field(None, strict=False)
    # Pending period: seconds a value stays out (or back in) before the alert fires (or resolves).
    for_: float | None = Field(None, alias="for", ge=0, strict=False)
    hysteresis: float | None = Field(None, ge=0, strict=False)
    # Seconds of silence before a no-data alert; null keeps `alerts.no_data_after`, 0 turns it off.
    no_data_after: float | None = Field(None, ge=0, strict=False)

    @model_validator(mode="after")
    def _ordered(self):
        _in_order(self, (("min", "max"), ("critical_min", "critical_max")))
        return self


class SensorLimitsConfig(_Strict):
    """One sensor type's ranges in a `profiles:` entry."""

    unit: str | None = None
    min: float | None = Field(None, strict=False)
    max: float | None = Field(None, strict=False)
    critical_min: float | None = Field(None, strict=False)
    critical_max: float | None = Field(None, strict=False)
    hysteresis: float | None = Field(None, ge=0, strict=False)
    advice_low: str | None = None
    advice_high: str | None = None

    @model_validator(mode="after")
    def _ordered(self):
        _in_order(self, (("min", "max"), ("critical_min", "critical_max")))
        return self


def _known_type(name: str) -> str:
    if name not in SENSOR_TYPES:
        hint = difflib.get_close_matches(name.lower(), SENSOR_TYPES, n=1)  # 'pH' -> 'ph'
        raise ValueError(f"unknown sensor type '{name}' (known: {', '.join(SENSOR_TYPES)})" + (f". Did you mean '{hint[0]}'?" if hint else ""))
    return name


SensorType = Annotated[str, AfterValidator(_known_type)]


class ProfileConfig(_Strict):
    """An entry of `profiles:`: a new profile, or more of a built-in one (same name)."""

    extends: str | None = None
    description: str = ""
    sensors: dict[SensorType, SensorLimitsConfig] = {}


def _apprise_url(url: str) -> str:
    import apprise

    quiet = logging.getLogger("apprise")
    level, quiet.level = quiet.level, logging.CRITICAL + 1  # it would log the URL, secrets and all
    try:
        plugin = apprise.Apprise.instantiate(url, suppress_exceptions=True)
    finally:
        quiet.level = level
    if plugin is None:
        # Never echo the URL, nor its start when it has no scheme: that may be user:password.
        if "://" not in url:
            raise ValueError("not a notification URL: it has no scheme such as ntfy:// (see docs/alerts.md)")
        scheme = url.split("://", 1)[0]
        raise ValueError(f"not a notification URL Apprise understands (scheme {scheme!r}); see docs/alerts.md for examples such as ntfy://TOPIC")
    return url


NotifyURL = Annotated[str, AfterValidator(_apprise_url)]


class RetryConfig(_Strict):
    # A failed notification is tried again after `initial` seconds, doubling up to `max`,
    # at most `attempts` times in all.
    initial: float = Field(10.0, gt=0, strict=False)
    max: float = Field(600.0, gt=0, strict=False)
    attempts: int = Field(10, ge=1)


class AlertsConfig(_Strict):
    """The top-level `alerts:` section."""

    enabled: bool = True
    # Apprise URLs (https://github.com/caronc/apprise/wiki), e.g. ntfy://my-topic.
    notify: list[NotifyURL] = []

    @field_validator("notify", mode="before")
    @classmethod
    def _a_list(cls, value):
        # A single URL without the dash would be echoed by the type error ("found: ..."),
        # password and all.
        if isinstance(value, str):
            raise ValueError("a list of Apprise URLs, one per line starting with '- ' (see docs/alerts.md)")
        return value
    # The default pending period (a sensor's `alert: {for: ...}` overrides it).
    for_: float = Field(DEFAULT_FOR, alias="for", ge=0, strict=False)
    # A sensor silent this long raises a no-data alert (0 turns it off).
    no_data_after: float = Field(300.0, ge=0, strict=False)
    no_data_severity: Severity = "warning"
    # A device that goes inactive (core/status.py) raises an alert of this severity.
    inactive_severity: Severity = "critical"
    # While an alert fires and nobody has acknowledged it, notify again this often (0: never).
    repeat_interval: float = Field(4 * 3600.0, ge=0, strict=False)
    # Send a notice when an alert resolves.
    send_resolved: bool = True
    retry: RetryConfig = RetryConfig()
    # Seconds the hub waits for one notification service to answer.
    timeout: float = Field(15.0, gt=0, strict=False)


def check(devices, profiles: dict[str, ProfileConfig], data, filename: str, issues: list[ConfigIssue]) -> None:
    """Cross-section checks: profile names exist, `extends` names exist, merged ranges are in order."""
    from smartanom.alerts.rules import effective_limits, resolve_profiles

    known = set(BUILTIN) | set(profiles)
    for name, profile in profiles.items():
        if profile.extends is not None and profile.extends not in known:
            loc = ("profiles", name, "extends")
            issues.append(ConfigIssue(filename, locate(data, loc), format_path(loc), _unknown_profile(profile.extends, known)))
            return
    resolved = resolve_profiles(profiles)
    for d_index, device in enumerate(devices):
        if device.profile is not None and device.profile not in known:
            loc = ("devices", d_index, "profile")
            issues.append(ConfigIssue(filename, locate(data, loc), format_path(loc), _unknown_profile(device.profile, known)))
            continue
        for s_index, sensor in enumerate(device.sensors):
            try:
                effective_limits(device, sensor, resolved)
            except ValueError as exc:
                loc = ("devices", d_index, "sensors", s_index) + (("alert",) if sensor.alert is not None else ())
                issues.append(ConfigIssue(filename, locate(data, loc), format_path(loc), str(exc)))


def _unknown_profile(name: str, known: set[str]) -> str:
    hint = difflib.get_close_matches(name, known, n=1)
    return f"unknown profile '{name}' (known: {', '.join(sorted(known))})" + (f". Did you mean '{hint[0]}'?" if hint else "")
