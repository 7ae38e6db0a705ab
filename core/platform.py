"""What a hardware plugin provides (`Platform`) and what it gets (`PluginContext`).

An installer switches a platform on with an entry under `plugins:` in YAML; the
hub validates that entry against the platform's `options` model (a pydantic
model, so a plugin's bad options give the same file-and-line errors as the
core's), then runs the platform's `run(ctx)` coroutine as a supervised task:
if it crashes it is logged and restarted with backoff; on shutdown it is cancelled.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Awaitable, Callable

from pydantic import BaseModel, ConfigDict

from smartanom.protocol import EARLIEST, MAX_CLOCK_SKEW

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
        self.platform = platform
        self.options = options
        self.label = label
        self.bus = hub.bus
        self.registry: Registry = hub.registry
        self.device: Device | None = hub.registry.device(options.device) if options.device is not None else None
        self.log = logging.getLogger(f"smartanom.plugins.{platform.name}")
        # Counters the instance wants shown in GET /api/plugins (instances[].stats),
        # e.g. messages dropped while a broker was away. Plain JSON values only.
        self.stats: dict[str, int | float | str | bool | None] = {}

    def publish_reading(self, sensor_id: int, value: float, timestamp: float | datetime | None = None) -> None:
        """Put one reading on the bus. Call on the event loop.

        `timestamp` is UTC epoch seconds or an aware datetime; None means now.
        Raises ValueError for an unknown sensor or a value that is not a finite number.
        """
        self._accept(self._sensor(sensor_id), _check_value(value), _epoch(timestamp))

    def publish_reading_threadsafe(
        self, sensor_id: int, value: float, timestamp: float | datetime | None = None
    ) -> None:
        """Like publish_reading, from a thread that is not running the event loop."""
        sensor = self._sensor(sensor_id)
        ts = _epoch(timestamp)
        self._hub.loop.call_soon_threadsafe(self._accept_logged, sensor, _check_value(value), ts)

    def calibration_standard(self, sensor_id: int) -> float | None:
        """While the sensor is being calibrated, the standard its probe is in (a
        buffer's pH, a solution's EC); None otherwise. For simulators."""
        return self._hub.calibration.standard_in_use(sensor_id)

    def _accept(self, sensor: "Sensor", raw: float, ts: float) -> None:
        # Calibration first: the plausible range is about the true (calibrated) value.
        calibrated = self._hub.calibration.transform(sensor, raw)
        if calibrated is None:
            return  # withheld: being calibrated, or no fresh water temperature to compensate with
        value = _plausible(sensor, calibrated.value)
        self._hub.accept_reading(sensor, value, ts, self.label, calibrated.raw, calibrated.calibration_id)

    def _accept_logged(self, sensor: "Sensor", raw: float, ts: float) -> None:
        try:
            self._accept(sensor, raw, ts)
        except ValueError as exc:  # the publishing thread is gone by now: log it instead
            self.log.warning("%s: reading of sensor %d refused: %s", self.label, sensor.id, exc)

    def set_device_available(self, available: bool, reason: str = "") -> None:
        """Report that the hardware behind this instance's device is reachable or gone.

        Gone makes the device `inactive` at once (instead of after offline_after);
        available only clears that mark: the next reading makes the device `active`.
        """
        if self.device is not None:
            self._hub.status.set_available(self.device, available, reason or self.label)

    def device_status(self, device_id: int) -> "DeviceStatus | None":
        """The device's current status (None for an unknown device), e.g. to
        report it to an outside system that connects after it last changed."""
        return self._hub.status.status.get(device_id)

    def _sensor(self, sensor_id: int) -> "Sensor":
        sensor = self.registry.sensor(sensor_id)
        if sensor is None:
            raise ValueError(f"{self.label}: sensor {sensor_id} is not configured")
        if sensor.computed:
            raise ValueError(f"{self.label}: sensor {sensor_id} is derived (the hub computes it; see 'derived:' in the config)")
        return sensor


def _plausible(sensor: "Sensor", value: float) -> float:
    problem = sensor.implausible(value)
    if problem:
        raise ValueError(problem)
    return value


def _check_value(value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"reading value must be a number, got {type(value).__name__}")
    try:
        value = float(value)
    except OverflowError:
        raise ValueError("reading value is too large for a double") from None
    if not math.isfinite(value):
        raise ValueError(f"reading value must be finite, got {value}")
    return value


def _epoch(timestamp) -> float:
    """UTC seconds since the epoch, checked like a WebSocket client's timestamp:
    a NaN or a millisecond value would otherwise reach storage and every dashboard."""
    if timestamp is None:
        return time.time()
    if isinstance(timestamp, datetime):
        if timestamp.tzinfo is None:
            raise ValueError("timestamp datetime must be timezone-aware (UTC)")
        epoch = timestamp.timestamp()
    elif isinstance(timestamp, (int, float)) and not isinstance(timestamp, bool):
        epoch = float(timestamp)
    else:
        raise ValueError(f"timestamp must be UTC seconds since the epoch or an aware datetime, got {type(timestamp).__name__}")
    if not math.isfinite(epoch):
        raise ValueError(f"timestamp must be finite, got {epoch}")
    if epoch > time.time() + MAX_CLOCK_SKEW:
        hint = " (milliseconds? pass seconds: ms / 1000)" if epoch > time.time() * 100 else ""
        raise ValueError(f"timestamp {epoch} lies in the future{hint}")
    if epoch < EARLIEST:
        raise ValueError(f"timestamp {epoch} lies before 2000; is the device's clock set?")
    return epoch
