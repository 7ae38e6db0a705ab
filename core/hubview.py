"""The hub as plugins see it: a small, documented object instead of `Hub`.

`on_startup`, `on_shutdown`, `register_routes` and every `PluginContext` get
one `HubView`. It offers the bus, the registry, the configuration (read-only),
the hub's URL, a way to publish a reading and a device's status; nothing else
of the running hub is reachable from it without a leading underscore, so the
hub's insides can change without breaking plugins. docs/writing-plugins.md,
"The hub view", is its user manual.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections import deque
from datetime import datetime
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from smartanom import isolation
from smartanom.throttle import LogThrottle
from smartanom.validity import Refusals, parse_reading

log = logging.getLogger("smartanom.plugins")

if TYPE_CHECKING:
    from smartanom.bus import EventBus
    from smartanom.events import DeviceStatus
    from smartanom.hub import Hub
    from smartanom.registry import Registry, Sensor


class HubView:
    """What a plugin may use of the running hub."""

    __slots__ = ("_hub", "_config", "_publishing")

    def __init__(self, hub: "Hub"):
        self._hub = hub
        self._config = ReadOnly(hub.config)
        # Readings published through the view itself (not through a PluginContext).
        self._publishing: Publishing = hub.plugins.publishing

    def __repr__(self) -> str:
        return f"<HubView {self.url}>"

    @property
    def bus(self) -> "EventBus":
        """The event bus: `subscribe(SensorReading or DeviceStatusChanged, listener)`."""
        return self._hub.bus

    @property
    def registry(self) -> "Registry":
        """Devices and sensors: `.device(id)`, `.sensor(id)`, `.devices`, `.sensors`."""
        return self._hub.registry

    @property
    def config(self) -> "ReadOnly":
        """The parsed configuration, read-only (`server`, `storage`, `devices`, `auth`...)."""
        return self._config

    @property
    def url(self) -> str:
        """Where the hub serves, such as `http://127.0.0.1:8000`."""
        return self._hub.url

    def publish_reading(self, sensor_id: int, value: float, timestamp: float | datetime | None = None, source: str = "plugin") -> bool:
        """Publish one reading (on the event loop), checked like a platform's.

        Returns False when it was not put on the bus: refused as implausible
        (counted and logged), or held back while its sensor is being calibrated.
        Raises ValueError for an unknown sensor or a malformed value.
        """
        sensor, raw, epoch = parse_reading(self.registry, sensor_id, value, timestamp, source)
        if self._publishing.listening:
            return self._publishing.defer(self._hub, sensor, raw, epoch, source)
        return admit(self._hub, sensor, raw, epoch, source, self._publishing.refusals)

    def device_status(self, device_id: int) -> "DeviceStatus | None":
        """A device's current status, or None for an unknown device."""
        return self._hub.status.of(device_id)


def admit(hub: "Hub", sensor: "Sensor", raw: float, epoch: float, source: str, refusals: Refusals) -> bool:
    """The last steps of every plugin's reading, on the loop: calibration, the plausible
    range (about the true, calibrated value), the bus. False if it went no further."""
    calibrated = hub.calibration.transform(sensor, raw)
    if calibrated is None:
        return False  # withheld: being calibrated, or no fresh water temperature to compensate with
    if not refusals.admit(sensor, calibrated.value):
        return False
    hub.accept_reading(sensor, calibrated.value, epoch, source, calibrated.raw, calibrated.calibration_id)
    return True


class Publishing:
    """What became of the readings published through the hub view: GET /api/plugins
    shows it as `hub_view` (the view is shared, so its refusals are counted here,
    as a PluginContext's are in its instance's stats).

    A reading published from inside an on_reading / on_device_status hook is not
    put on the bus at once (the bus calls listeners synchronously, so that would
    call the same hooks again, inside the publisher's own call, until
    RecursionError). It is checked at once (calibration, range), then queued and
    put on the bus after the current dispatch, on the loop's next turn. A queued
    reading's own listeners may publish again, but a chain ends after MAX_CHAIN
    links and at most MAX_WAITING readings wait: a plugin publishing for every
    reading costs bounded memory and CPU; what goes over is dropped, counted
    per plugin and logged at most once a minute per plugin.
    """

    MAX_WAITING = 1000
    MAX_CHAIN = 3  # a reading from a hook for one from a hook for one from a hook, no further

    def __init__(self) -> None:
        self.refusals = Refusals("hub view")
        self.listening = 0  # > 0 while PluginHost calls on_reading / on_device_status
        self.link = 0  # of the queued reading being dispatched (0: one not published from a hook)
        self.deferred = 0
        self.dropped: dict[str, int] = {}
        self._waiting: deque = deque()
        self._scheduled = False
        self._drop_log = LogThrottle()

    def as_dict(self) -> dict[str, Any]:
        return {"refused": self.refusals.counts, "deferred": self.deferred, "waiting": len(self._waiting), "dropped": self.dropped}

    def defer(self, hub: "Hub", sensor: "Sensor", raw: float, epoch: float, source: str) -> bool:
        """A reading published from a listener hook: checked now, on the bus after this dispatch."""
        link = self.link + 1
        if link > self.MAX_CHAIN:
            return self._drop(f"it would be link {link} of a chain of readings each published from a hook "
                              f"for the one before (at most {self.MAX_CHAIN})")
        if len(self._waiting) >= self.MAX_WAITING:
            return self._drop(f"{self.MAX_WAITING} readings published from hooks are already waiting")
        calibrated = hub.calibration.transform(sensor, raw)
        if calibrated is None or not self.refusals.admit(sensor, calibrated.value):
            return False
        self._waiting.append((link, hub, sensor, calibrated, epoch, source))
        self.deferred += 1
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._dispatch)
        return True

    def _dispatch(self) -> None:
        self._scheduled = False
        # Only those waiting now: what their listeners publish waits for the next turn.
        for _ in range(len(self._waiting)):
            self.link, hub, sensor, calibrated, epoch, source = self._waiting.popleft()
            try:
                hub.accept_reading(sensor, calibrated.value, epoch, source, calibrated.raw, calibrated.calibration_id)
            finally:
                self.link = 0

    def _drop(self, why: str) -> bool:
        plugin = isolation.current_plugin.get() or "?"
        self.dropped[plugin] = self.dropped.get(plugin, 0) + 1
        if self._drop_log.allow(plugin):
            log.warning("Plugin %s: a reading it published from a hook was dropped: %s; %d dropped so far "
                        "(logged at most once a minute per plugin)", plugin, why, self.dropped[plugin])
        return False


# Attributes of the configuration a plugin has no business reading.
_HIDDEN = frozenset({"tokens"})


class ReadOnly:
    """A read-only view of a configuration object.

    Attributes read through; lists come back as tuples, dicts as read-only
    mappings and nested sections as ReadOnly too, so no plugin can change
    what the rest of the hub runs on. API tokens are not readable at all.
    """

    __slots__ = ("_target",)

    def __init__(self, target: Any):
        object.__setattr__(self, "_target", target)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_") or name in _HIDDEN:
            raise AttributeError(f"the hub's configuration offers no {name!r} to plugins")
        return _read_only(getattr(self._target, name))

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"the hub's configuration is read-only (tried to set {name!r})")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"the hub's configuration is read-only (tried to delete {name!r})")

    def __eq__(self, other: object) -> bool:
        return self._target == (other._target if isinstance(other, ReadOnly) else other)

    __hash__ = None

    def __repr__(self) -> str:
        return f"ReadOnly({self._target!r})"


def _read_only(value: Any) -> Any:
    if value is None or isinstance(value, (str, bytes, int, float, enum.Enum)) or callable(value):
        return value  # immutable, or a class / function (a platform's run, its options model)
    if isinstance(value, (list, tuple, set, frozenset)):
        return tuple(_read_only(v) for v in value)
    if isinstance(value, dict):
        return MappingProxyType({k: _read_only(v) for k, v in value.items()})
    return ReadOnly(value)
