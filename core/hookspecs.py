"""The plugin contract: every hook the hub calls, in one place.

Plugin authors implement these with `@smartanom.hookimpl`; docs/writing-plugins.md
describes each one. Names say what comes back: `register_*` returns a list,
`on_*` is a notification whose return value is ignored.
"""

from __future__ import annotations

import pluggy

PROJECT = "smartanom"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def register_platforms():
    """Return a list of `smartanom.Platform` objects this plugin provides.

    Called once at start-up, before the configuration's `plugins:` section is
    validated, so that each instance there can name one of these platforms with
    `platform: NAME`. Synchronous. Return an empty list (or None) to provide none.
    Two plugins providing the same platform name is a start-up error.
    """


@hookspec
def register_outputs():
    """Return a list of `smartanom.OutputKind` objects this plugin provides.

    Called once at start-up, like `register_platforms`, so that each entry of
    the configuration's `outputs:` can name one with `type: NAME`. Synchronous.
    Return an empty list (or None) to provide none. Two plugins providing the
    same output kind is a start-up error.
    """


@hookspec
def on_startup(hub):
    """Called once the hub is serving, after every platform instance has started.

    `hub` is the hub view (`smartanom.hubview.HubView`): `bus`, `registry`,
    `config` (read-only), `url`, `publish_reading`, `device_status`. May be a
    plain function or a coroutine function; coroutines are awaited one plugin at
    a time. An exception is logged with the plugin's name and does not stop the
    hub. Wrappers are refused on this hook (its coroutines run after pluggy's call).
    """


@hookspec
def on_shutdown(hub):
    """Called once when the hub stops, after platform tasks were cancelled and
    before storage is flushed and closed (also when `on_startup` raised).
    Same rules as `on_startup`."""


@hookspec
def register_sensor_types():
    """Return a list of `smartanom.SensorType` this plugin adds (such as `orp` in mV).

    Called once at start-up (and by `smartanom check-config`), before the
    configuration is validated, so that a sensor's `type:` may name them.
    Synchronous. A name that is already taken, or an unusable type, is reported
    and left out; the plugin's other types still load.
    """


@hookspec
def on_reading(reading):
    """Called with every accepted `smartanom.SensorReading`, on the event loop.

    Synchronous and on the hub's hot path: return at once (queue slow work, such
    as a write to InfluxDB, for a task of your own). Refused readings never get
    here. An exception is logged with the plugin's name; the others still get it.
    """


@hookspec
def on_device_status(change):
    """Called with every `smartanom.DeviceStatusChanged`, on the event loop.

    Same rules as `on_reading`.
    """


@hookspec
def register_routes(hub):
    """Return a list of `(pattern, handler_class)` or `(pattern, handler_class, kwargs)`.

    Each is served under `/plugins/<plugin name>/` (`pattern` is a Tornado URL
    regex relative to that prefix); `kwargs` go to the handler's `initialize`.
    `hub` is the hub view, to pass on in `kwargs`. Called once at start-up,
    synchronously. With auth on, every route needs a token, as the API does.
    """
