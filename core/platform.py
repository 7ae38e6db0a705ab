"""What a hardware plugin provides (`Platform`) and what it gets (`PluginContext`).

An installer switches a platform on with an entry under `plugins:` in YAML; the
hub validates that entry against the platform's `options` model (a pydantic
model, so a plugin's bad options give the same file-and-line errors as the
core's), then runs the platform's `run(ctx)` coroutine as a supervised task:
if it crashes it is logged and restarted with backoff; on shutdown it is cancelled.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Awaitable, Callable

from pydantic import BaseModel, ConfigDict

from smartanom.hubview import HubView, admit
from smartanom.throttle import LogThrottle
from smartanom.validity import Refusals, parse_reading
from smartanom.protocol import format_timestamp

if TYPE_CHECKING:
    from smartanom.events import DeviceStatus
    from smartanom.hub import Hub
    from smartanom.registry import Device, Registry, Sensor


class PlatformOptions(BaseModel):
    """Base class of a platform's YAML options. Subclass it and add fields.

    Unknown keys are errors, and values are not coerced between types (a
    string where a number belongs is an error), so installers' typos surface.
    Validators can reach the registry through `info.context["registry"]`.
    """

    model_config = ConfigDict(extra="forbid", strict=True)

    platform: str
    device: int | None = None
    name: str | None = None

    def readings_per_second(self, registry: "Registry") -> float | None:
        """About how many readings this instance publishes per second, or None if
        unknown. check-config adds these up to tell whether storage.flush_interval
        fits under storage.max_pending; override it when the options say the rate."""
        return None

    def exclusive_resources(self) -> dict[str, str]:
        """What this entry opens exclusively, as {its key: resource}, e.g.
        {"port": "serial port /dev/ttyUSB0"}: two entries claiming one resource
        are a config error at the second one's key."""
        return {}

    def config_warnings(self) -> list[tuple[tuple, str]]:
        """Valid but probably mistaken settings, as (path in this entry, message):
        check-config prints them and the hub logs them at start-up."""
        return []


@dataclass(frozen=True)
class Platform:
    """A kind of hardware a plugin can talk to.

    name: what `platform:` says in YAML.
    run: `async def run(ctx: PluginContext) -> None`, the instance's whole life;
        it should loop until cancelled. Returning ends the instance (logged).
    options: the PlatformOptions subclass that validates the YAML entry.
    needs_device: whether the entry must name a `device:` it feeds.
    """

    name: str
    run: Callable[["PluginContext"], Awaitable[None]]
    options: type[PlatformOptions] = PlatformOptions
    needs_device: bool = True
    description: str = ""


class PluginContext:
    """Everything a running platform instance may use."""

    def __init__(self, hub: "Hub", platform: Platform, options: PlatformOptions, label: str):
        self._hub = hub
        self.hub: HubView = hub.view
        self.platform = platform
        self.options = options
        self.label = label
        self.bus = hub.view.bus
        self.registry: Registry = hub.view.registry
        self.device: Device | None = self.registry.device(options.device) if options.device is not None else None
        self.log = logging.getLogger(f"smartanom.plugins.{platform.name}")
        # Counters the instance wants shown in GET /api/plugins (instances[].stats),
        # e.g. messages dropped while a broker was away. Plain JSON values only.
        self.stats: dict[str, int | float | str | bool | dict | None] = {}
        self._refusals = Refusals(label)
        # Shared with this plugin's outputs (OutputContext.shared): put the connection
        # an output needs here, keyed by your plugin's name and this instance's label.
        self.shared: dict = hub.shared
        self._overload_log = LogThrottle()

    @property
    def overloaded(self) -> bool:
        """True while the hub refuses new readings: storage holds nearly all the
        unwritten readings it may (storage.max_pending). Send fewer, or hold them."""
        return self._hub.storage.backlogged

    def publish_reading(self, sensor_id: int, value: float, timestamp: float | datetime | None = None) -> bool:
        """Put one reading on the bus (after its sensor's calibration). Call on the event loop.

        `timestamp` is UTC epoch seconds or an aware datetime; None means now.
        Returns False, without raising, when the reading went no further: the hub
        is `overloaded` (counted in `stats["refused_overloaded"]`; nothing accepted
        is ever dropped, so this one was not accepted); its (calibrated) value lies
        outside the sensor's plausible range, so it is refused, counted in
        `stats["refused"]` (per sensor id) and logged at most once a minute per
        sensor; or the sensor is being calibrated.
        Raises ValueError for an unknown or derived sensor, a value that is not a
        finite number or a bad timestamp (bugs to fix in the plugin, not data).
        """
        sensor, raw, epoch = parse_reading(self.registry, sensor_id, value, timestamp, self.label)
        if self._refused_overloaded():
            return False
        return self._admit(sensor, raw, epoch)

    def publish_reading_threadsafe(self, sensor_id: int, value: float, timestamp: float | datetime | None = None) -> bool:
        """Like publish_reading, from a thread that is not running the event loop.

        The same ValueErrors are raised in the calling thread. False if the hub is
        overloaded (nothing is queued); otherwise True, and a refusal by the
        plausible range is counted and logged on the loop."""
        sensor, raw, epoch = parse_reading(self.registry, sensor_id, value, timestamp, self.label)
        if self._refused_overloaded():
            return False
        self._hub.loop.call_soon_threadsafe(self._admit, sensor, raw, epoch)
        return True

    def _refused_overloaded(self) -> bool:
        if not self._hub.storage.backlogged:
            return False
        self.stats["refused_overloaded"] = self.stats.get("refused_overloaded", 0) + 1
        if self._overload_log.allow():
            self.log.warning(
                "%s: the hub is overloaded (storage is behind or failing); readings refused, %d so far",
                self.label, self.stats["refused_overloaded"],
            )
        return True

    def calibration_standard(self, sensor_id: int) -> float | None:
        """While the sensor is being calibrated, the standard its probe is in (a
        buffer's pH, a solution's EC); None otherwise. For simulators."""
        return self._hub.calibration.standard_in_use(sensor_id)

    def set_device_available(self, available: bool, reason: str = "") -> None:
        """Report that the hardware behind this instance's device is reachable or gone.

        Gone makes the device `inactive` at once (instead of after offline_after);
        available only clears that mark: the next reading makes the device `active`.
        """
        if self.device is not None:
            self._hub.status.set_available(self.device, available, reason or self.label)

    def set_problem(self, problem: str | None) -> None:
        """Report what keeps this instance from working (a port missing, busy or
        forbidden), or None once it works again. Shown with since when in
        GET /api/plugins (stats.problem, stats.problem_since) and listed by /api/health."""
        if problem is None:
            self.stats.pop("problem", None)
            self.stats.pop("problem_since", None)
        elif self.stats.get("problem") != problem:
            self.stats["problem"] = problem
            self.stats["problem_since"] = format_timestamp(time.time())
            self.stats["last_error"] = problem

    def device_status(self, device_id: int) -> "DeviceStatus | None":
        """The device's current status (None for an unknown device), e.g. to
        report it to an outside system that connects after it last changed."""
        return self._hub.status.of(device_id)

    def alert_rules(self) -> list[dict]:
        """The conditions the hub raises alerts for, e.g. to mirror them elsewhere (MQTT):
        each `{"key", "name", "device_id", "sensor_id"}` (sensor_id None for a device's).
        Alerts other subsystems raise have keys not listed here: see AlertChanged."""
        return self._hub.alerts.catalog()

    def active_alerts(self) -> list[dict]:
        """The active alerts, as GET /api/alerts shows them."""
        return [alert.as_json() for alert in self._hub.alerts.active()]

    def _admit(self, sensor: "Sensor", raw: float, epoch: float) -> bool:
        admitted = admit(self._hub, sensor, raw, epoch, self.label, self._refusals)
        if not admitted and self._refusals.counts and "refused" not in self.stats:
            self.stats["refused"] = self._refusals.counts  # the same dict: counts stay live
        return admitted
