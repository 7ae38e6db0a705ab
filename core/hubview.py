"""The hub as plugins see it: a small, documented object instead of `Hub`.

`on_startup`, `on_shutdown`, `register_routes` and every `PluginContext` get
one `HubView`. It offers the bus, the registry, the configuration (read-only),
the hub's URL, a way to publish a reading and a device's status; nothing else
of the running hub is reachable from it without a leading underscore, so the
hub's insides can change without breaking plugins. docs/writing-plugins.md,
"The hub view", is its user manual.
"""

from __future__ import annotations

import enum
from datetime import datetime
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from smartanom.validity import Refusals, parse_reading

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
    as a PluginContext's are in its instance's stats)."""

    def __init__(self) -> None:
        self.refusals = Refusals("hub view")

    def as_dict(self) -> dict[str, Any]:
        return {"refused": self.refusals.counts}


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
