"""One policy for a reading's validity, for every road a reading takes.

WebSocket clients (core/protocol.py, core/websocket.py) and plugins
(`PluginContext.publish_reading`, `HubView.publish_reading`) are checked by the
same functions:

- the value must be a finite number (not a boolean, not NaN or infinite);
- the timestamp must be finite, after 2000 and at most 5 minutes in the future;
- the value must lie within its sensor's plausible range (min/max in the YAML,
  or the range of its sensor type).

The first two are malformed input, the sender's bug: `InvalidReading` (a
ValueError with the WebSocket error code). The third is a fact about the world
(a probe out of the water, a loose wire): a client gets INVALID_VALUE, and a
plugin's reading is refused without an exception, counted per sensor in
`Refusals` and logged at most once a minute per sensor, so a plugin's loop goes
on feeding its other sensors.
"""

from __future__ import annotations

import logging
import math
import time
from datetime import datetime
from typing import TYPE_CHECKING, Callable

from smartanom.throttle import LogThrottle

if TYPE_CHECKING:
    from smartanom.registry import Sensor

log = logging.getLogger("smartanom.validity")

MAX_CLOCK_SKEW = 300.0  # seconds a timestamp may lie in the future
EARLIEST = 946684800.0  # 2000-01-01T00:00:00Z: anything older is an unset clock


class InvalidReading(ValueError):
    """A malformed value or timestamp; `code` is the WebSocket error code."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


def check_value(value, describe: Callable[[object], str] = lambda v: type(v).__name__) -> float:
    """`value` as a float, or InvalidReading. `describe` names a wrong type (JSON's names for clients)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidReading("INVALID_VALUE", f"value must be a number, got {describe(value)}")
    try:
        number = float(value)
    except OverflowError:
        raise InvalidReading("INVALID_VALUE", "value is too large for a double") from None
    if not math.isfinite(number):
        raise InvalidReading("INVALID_VALUE", f"value must be a finite number, got {number}")
    return number


def check_epoch(epoch: float, shown: str | None = None) -> float:
    """A UTC epoch timestamp that a sensor could have measured, or InvalidReading."""
    shown = shown or repr(epoch)
    if not math.isfinite(epoch):
        raise InvalidReading("INVALID_TIMESTAMP", f"timestamp must be finite, got {epoch}")
    now = time.time()
    if epoch > now + MAX_CLOCK_SKEW:
        hint = " (milliseconds? pass seconds: ms / 1000)" if epoch > now * 100 else ""
        raise InvalidReading("INVALID_TIMESTAMP", f"timestamp {shown} lies in the future{hint}; check the sender's clock")
    if epoch < EARLIEST:
        raise InvalidReading("INVALID_TIMESTAMP", f"timestamp {shown} lies before 2000; check the sender's clock")
    return epoch


def epoch_of(timestamp: float | datetime | None) -> float:
    """A plugin's timestamp (UTC seconds, an aware datetime, or None for now) as checked epoch seconds."""
    if timestamp is None:
        return time.time()
    if isinstance(timestamp, datetime):
        if timestamp.tzinfo is None:
            raise InvalidReading("INVALID_TIMESTAMP", "timestamp datetime must be timezone-aware (UTC)")
        return check_epoch(timestamp.timestamp(), timestamp.isoformat())
    if isinstance(timestamp, bool) or not isinstance(timestamp, (int, float)):
        raise InvalidReading(
            "INVALID_TIMESTAMP",
            f"timestamp must be UTC seconds since the epoch or an aware datetime, got {type(timestamp).__name__}",
        )
    return check_epoch(float(timestamp))


def implausible(sensor: "Sensor", value: float) -> str | None:
    """Why `value` cannot be a reading of `sensor`, or None."""
    if sensor.low <= value <= sensor.high:
        return None
    return (
        f"value {value:g} is outside sensor {sensor.id}'s plausible range "
        f"({sensor.low:g} to {sensor.high:g}, min/max in the config or the sensor type's range)"
    )


class Refusals:
    """Implausible readings refused from one publisher, counted per sensor.

    `counts` maps the sensor id (as text: it is shown as JSON) to how many of its
    readings were refused; a plugin instance's shows in GET /api/plugins.
    """

    def __init__(self, publisher: str):
        self.publisher = publisher
        self.counts: dict[str, int] = {}
        self._throttle = LogThrottle()

    def admit(self, sensor: "Sensor", value: float) -> bool:
        """Whether `value` lies in the sensor's plausible range; if not, it is refused here."""
        problem = implausible(sensor, value)
        if problem:
            self.refuse(sensor, problem)
        return problem is None

    def refuse(self, sensor: "Sensor", problem: str) -> None:
        key = str(sensor.id)
        self.counts[key] = self.counts.get(key, 0) + 1
        if self._throttle.allow(sensor.id):
            log.warning(
                "%s: refused a reading: %s; %d refused for this sensor so far (logged at most once a minute per sensor)",
                self.publisher, problem, self.counts[key],
            )



def parse_reading(registry, sensor_id: int, value, timestamp: float | datetime | None, publisher: str) -> tuple["Sensor", float, float]:
    """A plugin's reading as (sensor, value, epoch), before calibration and the range check.

    Raises ValueError (InvalidReading for the value and timestamp) for an unknown
    or derived sensor or a malformed value or timestamp: bugs in the plugin.
    """
    sensor = registry.sensor(sensor_id)
    if sensor is None:
        raise ValueError(f"{publisher}: sensor {sensor_id} is not configured")
    if sensor.computed:
        raise ValueError(f"{publisher}: sensor {sensor_id} is derived (the hub computes it; see 'derived:' in the config)")
    return sensor, check_value(value), epoch_of(timestamp)
