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

    `hub` is the running `smartanom.hub.Hub`: `hub.bus`, `hub.registry`,
    `hub.config` (read-only) and `hub.url` are public. May be a plain function or a coroutine function;
    a coroutine is awaited before the next plugin's hook runs. An exception is
    logged with the plugin's name and does not stop the hub.
    """


@hookspec
def on_shutdown(hub):
    """Called once when the hub stops, after platform tasks were cancelled and
    before storage is flushed and closed (also when `on_startup` raised).
    Same rules as `on_startup`."""
