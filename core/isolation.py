"""Calling plugins through pluggy while each plugin's failures stay its own.

Hooks are called through pluggy itself (`pm.hook.NAME(...)`), so pluggy's
features work as its docs say: `tryfirst`/`trylast` order the calls,
`wrapper=True` (and the older `hookwrapper=True`) wrap them. pluggy stops a call
at the first exception, though, and the hub promises that one plugin raising
never stops another. So, at registration, each implementation's function is
replaced by a guard that logs the plugin's exception with its name and stands
in for its result: a plain implementation gives None (pluggy leaves it out),
a coroutine is awaited by the hub inside a guard, and a wrapper that raises is
reported while the call goes on without it.

What the hub cannot honour is refused at load (`unsupported`), naming the
plugin: an `async def` implementation of a hook the hub calls synchronously,
and a wrapper around a hook whose coroutines the hub awaits after pluggy's
call has returned (the wrapper could neither see nor time them).
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import time
from contextvars import ContextVar
from typing import Any, Callable, Iterator

import pluggy

# Hooks whose implementations may be `async def`: the hub awaits them, one plugin at a time.
ASYNC_HOOKS = frozenset({"on_startup", "on_shutdown"})
# Hooks called on the event loop for every reading or status change: an implementation
# slower than this stalls every client and plugin, so it is reported (like a failure).
LISTENER_HOOKS = frozenset({"on_reading", "on_device_status"})
SLOW_LISTENER = 0.1  # seconds

# The plugin whose on_reading / on_device_status is running (to name it when the
# hub view drops a reading it published from there).
current_plugin: ContextVar[str | None] = ContextVar("smartanom_current_plugin", default=None)

# What a guarded coroutine returns when its plugin raised (None is a valid result).
FAILED = object()

Fail = Callable[..., None]  # PluginHost._fail(plugin_name, message, exc)
Trace = Callable[[str, str, Any, Any], None]  # PluginHost._trace(hook, plugin, argnames, result)

# (hook name, [(plugin name, result), ...]) while PluginHost.call_each_sync runs a hook.
_collecting: ContextVar[tuple[str, list] | None] = ContextVar("smartanom_collecting", default=None)


@contextlib.contextmanager
def collect(hook_name: str) -> Iterator[list[tuple[str, Any]]]:
    """Gather each plugin's result of one call of `hook_name`, with the plugin's name
    (pluggy returns bare results). A hook that the call triggers is not gathered."""
    results: list[tuple[str, Any]] = []
    token = _collecting.set((hook_name, results))
    try:
        yield results
    finally:
        _collecting.reset(token)


def unsupported(pm: pluggy.PluginManager, plugin_name: str) -> str | None:
    """Why the hub cannot call this plugin's hook implementations as declared, or None."""
    for hook, impl in _impls(pm, plugin_name):
        function = impl.function
        is_async = inspect.iscoroutinefunction(function) or inspect.isasyncgenfunction(function)
        if is_async and hook not in ASYNC_HOOKS:
            return f"{hook} must be a plain function, not `async def`: the hub calls it synchronously"
        if hook in ASYNC_HOOKS and (impl.wrapper or impl.hookwrapper):
            return (
                f"{hook} cannot be a wrapper (wrapper=True or hookwrapper=True): the hub awaits "
                f"{hook}'s coroutines after pluggy's call returns, outside any wrapper"
            )
    return None


def isolate(pm: pluggy.PluginManager, plugin_name: str, fail: Fail, trace: Trace) -> None:
    """Guard each hook implementation of `plugin_name` (see the module's docstring)."""
    for hook, impl in _impls(pm, plugin_name):
        if impl.wrapper:
            impl.function = _guard_wrapper(impl.function, plugin_name, hook, fail)
        elif impl.hookwrapper:
            impl.function = _guard_wrapper(impl.function, plugin_name, hook, fail, "hookwrapper")
        else:
            impl.function = _guard(impl.function, plugin_name, hook, impl.argnames, fail, trace)


def _impls(pm: pluggy.PluginManager, plugin_name: str) -> Iterator[tuple[str, pluggy.HookImpl]]:
    for caller in pm.get_hookcallers(pm.get_plugin(plugin_name)) or ():
        for impl in caller.get_hookimpls():
            if impl.plugin_name == plugin_name:
                yield caller.name, impl


def _raised(hook: str, exc: BaseException, where: str = "") -> str:
    return f"raised in {hook}{where}: {type(exc).__name__}: {exc}"


def _guard(function, plugin: str, hook: str, argnames, fail: Fail, trace: Trace):
    timed = hook in LISTENER_HOOKS

    @functools.wraps(function)
    def guarded(*args):
        started = time.monotonic() if timed else 0.0
        running = current_plugin.set(plugin) if timed else None
        try:
            result = function(*args)
        except Exception as exc:
            fail(plugin, _raised(hook, exc), exc)
            return None
        finally:
            if running is not None:
                current_plugin.reset(running)
            took = time.monotonic() - started if timed else 0.0
            if took > SLOW_LISTENER:
                fail(plugin, (
                    f"blocked the event loop in {hook}: took {took:.2f} s (more than {SLOW_LISTENER} s); "
                    "return at once and queue slow work for a task of your own"
                ))
        if inspect.isawaitable(result) and hook not in ASYNC_HOOKS:
            # A plain function handing back a coroutine slips past the `async def` check at load.
            getattr(result, "close", lambda: None)()  # no "never awaited" warning later
            exc = TypeError(f"it returned a coroutine, but the hub calls {hook} synchronously and would never await it")
            fail(plugin, _raised(hook, exc), None)
            return None
        if inspect.isawaitable(result):
            result = _awaited(result, plugin, hook, fail)
        else:
            trace(hook, plugin, argnames, result)
        collecting = _collecting.get()
        if collecting is not None and collecting[0] == hook:
            collecting[1].append((plugin, result))
        return result

    return guarded


async def _awaited(awaitable, plugin: str, hook: str, fail: Fail):
    try:
        return await awaitable
    except Exception as exc:
        fail(plugin, _raised(hook, exc), exc)
        return FAILED


def _guard_wrapper(function, plugin: str, hook: str, fail: Fail, kind: str = "wrapper"):
    """A wrapper generator whose own exceptions are reported, not raised.

    Works for both styles: a `wrapper=True` one gets the result and returns the
    new one; a `hookwrapper=True` one gets pluggy's Result (its return is ignored).
    """

    @functools.wraps(function)
    def guarded(*args):
        try:
            inner = function(*args)
            next(inner)
        except Exception as exc:  # including StopIteration: it never yielded
            fail(plugin, _raised(hook, exc, f" ({kind}, before yield)"), exc)
            return (yield)
        received = yield
        try:
            inner.send(received)
        except StopIteration as done:
            return done.value
        except Exception as exc:
            fail(plugin, _raised(hook, exc, f" ({kind}, after yield)"), exc)
            return received
        inner.close()
        fail(plugin, f"its {hook} {kind} yielded more than once")
        return received

    return guarded
