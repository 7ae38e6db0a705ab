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
