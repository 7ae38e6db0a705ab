"""core/isolation.py: hooks go through pluggy (tryfirst, wrapper=True, hookwrapper work),
each plugin's failure stays its own, and what the hub cannot honour is refused at load."""

import asyncio
import time
import logging
import re

import pytest

from smartanom import Platform, hookimpl
from smartanom.plugins import PluginHost


async def _run(ctx):
    pass


def provider(name):
    class Provider:
        @hookimpl
        def register_platforms(self):
            return [Platform(name, run=_run)]

    return Provider()


class Raises:
    @hookimpl
    def register_platforms(self):
        raise RuntimeError("no driver")


def host_with(*plugins) -> PluginHost:
    host = PluginHost()
    for name, plugin in plugins:
        host.register(plugin, name)
    return host


def test_tryfirst_and_trylast_order_the_calls():
    calls = []

    class Early:
        @hookimpl(tryfirst=True)
        def on_startup(self):
            calls.append("early")

    class Plain:
        @hookimpl
        def on_startup(self):
            calls.append("plain")

    class Late:
        @hookimpl(trylast=True)
        def on_startup(self):
            calls.append("late")

    host = host_with(("late", Late()), ("early", Early()), ("plain", Plain()))
    asyncio.run(host.call_each("on_startup", hub=None))
    assert calls == ["early", "plain", "late"]


def test_a_wrapper_sees_every_plugins_result_even_when_one_raises(caplog):
    seen = []

    class Counting:
        @hookimpl(wrapper=True)
        def register_platforms(self):
            result = yield
            seen.append(sorted(p.name for platforms in result for p in platforms))
            return result

    host = host_with(("a", provider("a_probe")), ("bad", Raises()), ("b", provider("b_probe")), ("counting", Counting()))
    assert sorted(host.collect_platforms()) == ["a_probe", "b_probe"]
    assert seen == [["a_probe", "b_probe"]]
    assert host.records["bad"].errors == ["raised in register_platforms: RuntimeError: no driver"]


def test_an_old_style_hookwrapper_works_too():
    seen = []

    class Old:
        @hookimpl(hookwrapper=True)
        def register_platforms(self):
            outcome = yield
            seen.append(len(outcome.get_result()))

    host = host_with(("a", provider("a_probe")), ("old", Old()))
    host.collect_platforms()
    assert seen == [1]


@pytest.mark.parametrize("where", ["before", "after"])
def test_a_wrapper_that_raises_is_reported_and_the_call_goes_on(where, caplog):
    class Broken:
        @hookimpl(wrapper=True)
        def register_platforms(self):
            if where == "before":
                raise ValueError("wrapper bug")
            result = yield
            raise ValueError("wrapper bug")

    host = host_with(("a", provider("a_probe")), ("broken", Broken()))
    assert list(host.collect_platforms()) == ["a_probe"]
    assert host.records["broken"].errors == [f"raised in register_platforms (wrapper, {where} yield): ValueError: wrapper bug"]


def test_an_async_coroutine_that_raises_does_not_stop_the_next_plugin(caplog):
    calls = []

    class Fails:
        @hookimpl
        async def on_shutdown(self):
            raise OSError("socket gone")

    class Fine:
        @hookimpl
        async def on_shutdown(self):
            calls.append("fine")

    host = host_with(("fine", Fine()), ("fails", Fails()))  # fails is called first
    asyncio.run(host.call_each("on_shutdown", hub=None))
    assert calls == ["fine"]
    assert host.records["fails"].errors == ["raised in on_shutdown: OSError: socket gone"]


def test_what_the_hub_cannot_honour_is_refused_at_load_naming_the_plugin(caplog):
    class AsyncPlatforms:
        @hookimpl
        async def register_platforms(self):
            return []

    class WrapsStartup:
        @hookimpl(wrapper=True)
        def on_startup(self):
            return (yield)

    caplog.set_level(logging.ERROR, logger="smartanom.plugins")
    host = host_with(("asyncy", AsyncPlatforms()), ("wrapsy", WrapsStartup()), ("a", provider("a_probe")))
    assert not host.pm.has_plugin("asyncy") and not host.pm.has_plugin("wrapsy")
    assert host.records["asyncy"].errors == [
        "is not a valid plugin: PluginError: register_platforms must be a plain function, not `async def`: the hub calls it synchronously"
    ]
    assert "on_startup cannot be a wrapper" in host.records["wrapsy"].error
    assert "Plugin asyncy is not a valid plugin" in caplog.text
    assert list(host.collect_platforms()) == ["a_probe"]


def test_an_old_style_hookwrapper_that_raises_after_yield_is_reported():
    class Old:
        @hookimpl(hookwrapper=True)
        def register_platforms(self):
            yield
            raise KeyError("oops")

    host = host_with(("a", provider("a_probe")), ("old", Old()))
    assert list(host.collect_platforms()) == ["a_probe"]
    assert host.records["old"].errors == ["raised in register_platforms (hookwrapper, after yield): KeyError: 'oops'"]


def test_a_plain_function_returning_a_coroutine_from_a_synchronous_hook_is_reported_and_closed():
    # Not `async def` (so not refused at load), e.g. a lambda or a decorator that hides it.
    returned = []

    async def export(reading):
        pass

    class Sneaky:
        @hookimpl
        def on_reading(self, reading):
            returned.append(export(reading))
            return returned[-1]

    host = host_with(("sneaky", Sneaky()))
    assert host.call_each_sync("on_reading", reading=None) == []  # left out, as when it raises
    assert host.records["sneaky"].errors == [
        "raised in on_reading: TypeError: it returned a coroutine, but the hub calls on_reading synchronously and would never await it"
    ]
    assert returned[0].cr_frame is None  # closed: no "coroutine ... was never awaited" later


def test_a_listener_hook_that_blocks_the_event_loop_is_reported():
    class Blocking:
        @hookimpl
        def on_reading(self, reading):
            time.sleep(0.15)  # e.g. a synchronous HTTP call to InfluxDB

    host = host_with(("blocking", Blocking()))
    host.call_each_sync("on_reading", reading=None)
    (problem,) = host.records["blocking"].errors
    assert re.fullmatch(
        r"blocked the event loop in on_reading: took \d+\.\d\d s \(more than 0\.1 s\); "
        r"return at once and queue slow work for a task of your own", problem
    ), problem


def test_a_wrapper_observes_but_what_it_returns_does_not_change_what_the_hub_takes():
    seen = []

    class Hides:
        @hookimpl(wrapper=True)
        def register_platforms(self):
            seen.extend(name for result in (yield) for name in [p.name for p in result])
            return []  # as the guide says: pluggy's result, not the hub's

    host = host_with(("a", provider("a_probe")), ("hides", Hides()))
    assert list(host.collect_platforms()) == ["a_probe"]
    assert seen == ["a_probe"]


def test_a_second_plugin_object_under_a_taken_name_leaves_the_first_loaded():
    host = PluginHost()
    host.register(provider("first"), "probe", "smartanom-first", "1.0")
    host.register(provider("second"), "probe")
    assert list(host.collect_platforms()) == ["first"]
    record = host.records["probe"]
    assert (record.package, record.loaded) == ("smartanom-first", True)
    assert record.errors == ["a second plugin named 'probe' is not loaded: the name is taken"]
