"""Finding plugins and calling their hooks, each plugin isolated from the others.

Every plugin, built-in or third-party, is an entry point in the `smartanom`
group. Each is loaded on its own: one that fails to import or raises in a hook
is logged with its name and package version, and the others carry on.

Debugging switches (environment):
  SMARTANOM_PLUGINS=a,b      load only these entry points
  SMARTANOM_TRACE_HOOKS=1    log every hook call and its result at INFO
"""

from __future__ import annotations

import inspect
import logging
import os
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

import pluggy

from smartanom import hookspecs, isolation, sensortypes
from smartanom.control.outputs import OutputKind, OutputOptions
from smartanom.errors import PluginError
from smartanom.hubview import Publishing
from smartanom.events import DeviceStatusChanged, SensorReading
from smartanom.platform import Platform, PlatformOptions
from smartanom.sensortypes import BUILTIN_TYPES, SensorType
from smartanom.throttle import LogThrottle

log = logging.getLogger("smartanom.plugins")

ENTRY_POINT_GROUP = "smartanom"
# A plugin's problems kept for `smartanom plugins` and GET /api/plugins: the latest ones.
MAX_ERRORS = 20


@dataclass
class PluginRecord:
    """What `smartanom plugins` and /api/plugins show about one plugin."""

    name: str
    package: str = ""
    version: str = ""
    platforms: list[str] = field(default_factory=list)
    loaded: bool = True
    # Every problem, oldest first: a plugin may load, then raise in a hook.
    errors: list[str] = field(default_factory=list)

    @property
    def error(self) -> str | None:
        return self.errors[-1] if self.errors else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "package": self.package,
            "version": self.version,
            "platforms": self.platforms,
            "loaded": self.loaded,
            "error": self.error,
            "errors": self.errors,
        }


class PluginHost:
    """The pluggy manager plus what the hub learned about each plugin."""

    def __init__(self) -> None:
        self.pm = pluggy.PluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)
        self.records: dict[str, PluginRecord] = {}
        self.platforms: dict[str, Platform] = {}
        self.platform_owner: dict[str, str] = {}
        self.output_kinds: dict[str, OutputKind] = {}
        self.output_owner: dict[str, str] = {}
        self.trace = os.environ.get("SMARTANOM_TRACE_HOOKS", "") not in ("", "0")
        self._error_log = LogThrottle()
        # Readings plugins publish through the hub view (hubview.py), counted for /api/plugins.
        self.publishing = Publishing()

    @property
    def failed(self) -> list[str]:
        """Plugins with a problem, each as `name (package version)`."""
        return [self._describe(r.name) for r in self.records.values() if r.errors]

    def load_entry_points(self) -> None:
        only = {n.strip() for n in os.environ.get("SMARTANOM_PLUGINS", "").split(",") if n.strip()}
        loaded = []
        # By name, then package: of two packages declaring one name, the same one wins on every machine.
        for ep in sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: (e.name, _package(e))):
            if only and ep.name not in only:
                log.info("Plugin %s skipped (SMARTANOM_PLUGINS=%s)", ep.name, ",".join(sorted(only)))
                continue
            if ep.name in self.records:
                if _package(ep) != self.records[ep.name].package:
                    self._fail(ep.name, (
                        f"entry point name '{ep.name}' is also declared by {_package(ep)} {ep.dist.version} "
                        f"({ep.value}), which is not loaded: uninstall one of the two packages"
                    ))
                continue  # otherwise the same distribution seen twice on sys.path
            dist = getattr(ep, "dist", None)
            self.records[ep.name] = PluginRecord(ep.name, dist.name if dist else "", dist.version if dist else "")
            try:
                loaded.append((ep.name, ep.load()))
            except Exception as exc:
                self._fail(ep.name, f"failed to load: {type(exc).__name__}: {exc}", exc, loaded=False)
        # pluggy calls the last registered first: registering in reverse name order
        # makes hooks run in entry-point name order (tryfirst/trylast still apply).
        for name, plugin in reversed(loaded):
            self._register(plugin, name)

    def register(self, plugin: object, name: str, package: str = "", version: str = "") -> None:
        """Register a plugin object directly (tests, embedding); isolated like an entry point.

        Its hooks run before those of the plugins registered earlier (pluggy's order)."""
        if self.pm.has_plugin(name):
            self._fail(name, f"a second plugin named '{name}' is not loaded: the name is taken")
            return
        self.records[name] = PluginRecord(name, package, version)
        self._register(plugin, name)

    def _register(self, plugin: object, name: str) -> None:
        # pluggy rejects a hookimpl with arguments its spec lacks (register) or
        # a hook no spec declares (check_pending); isolation.unsupported what the
        # hub could not honour. Checking after each plugin pins the blame on that
        # plugin, and only it is dropped.
        registered = False
        try:
            self.pm.register(plugin, name=name)
            registered = True
            self.pm.check_pending()
            problem = isolation.unsupported(self.pm, name)
            if problem:
                raise PluginError(problem)
        except Exception as exc:
            if registered:  # not another plugin that holds the name
                self.pm.unregister(name=name)
            self._fail(name, f"is not a valid plugin: {type(exc).__name__}: {exc}", exc, loaded=False)
            return
        isolation.isolate(self.pm, name, self._fail, self._trace)

    def collect_platforms(self) -> dict[str, Platform]:
        """Ask every plugin for its platforms. Raises PluginError on a name clash."""
        for plugin_name, result in self.call_each_sync("register_platforms"):
            if result is not None and not isinstance(result, (list, tuple)):
                self._fail(plugin_name, f"register_platforms must return a list of smartanom.Platform, got {type(result).__name__}")
                continue
            for platform in result or ():
                problem = _platform_problem(platform)
                if problem:
                    self._fail(plugin_name, f"register_platforms returned an unusable platform: {problem}")
                    continue
                if platform.name in self.platform_owner:
                    self._clash(f"platform '{platform.name}'", self.platform_owner[platform.name], plugin_name)
                self.platform_owner[platform.name] = plugin_name
                self.platforms[platform.name] = platform
                if plugin_name in self.records:
                    self.records[plugin_name].platforms.append(platform.name)
        return self.platforms

    def collect_outputs(self) -> dict[str, OutputKind]:
        """Ask every plugin for its output kinds. Raises PluginError on a name clash."""
        for plugin_name, result in self.call_each_sync("register_outputs"):
            if result is not None and not isinstance(result, (list, tuple)):
                self._fail(plugin_name, f"register_outputs must return a list of smartanom.OutputKind, got {type(result).__name__}")
                continue
            for kind in result or ():
                problem = _output_kind_problem(kind)
                if problem:
                    self._fail(plugin_name, f"register_outputs returned an unusable output kind: {problem}")
                    continue
                if kind.name in self.output_owner:
                    raise PluginError(
                        f"output type '{kind.name}' is provided by {self._describe(self.output_owner[kind.name])} and by "
                        f"{self._describe(plugin_name)}; uninstall one of them or load only one with SMARTANOM_PLUGINS"
                    )
                self.output_owner[kind.name] = plugin_name
                self.output_kinds[kind.name] = kind
        return self.output_kinds

    def collect_sensor_types(self) -> dict[str, SensorType]:
        """The built-in sensor types plus every plugin's. A plugin's type that is
        unusable or whose name is taken is reported and left out; the rest load."""
        catalog = dict(BUILTIN_TYPES)
        owners: dict[str, str] = {}
        for plugin_name, result in self.call_each_sync("register_sensor_types"):
            if result is not None and not isinstance(result, (list, tuple)):
                self._fail(plugin_name, f"register_sensor_types must return a list of smartanom.SensorType, got {type(result).__name__}")
                continue
            for sensor_type in result or ():
                problem = sensortypes.problem(sensor_type)
                if problem is None and sensor_type.name in owners:
                    if catalog[sensor_type.name] == sensor_type:
                        continue  # the same definition twice (a shared helper package): one type
                    # Which unit and range would the YAML's sensors of that type get?
                    self._clash(f"sensor type '{sensor_type.name}'", owners[sensor_type.name], plugin_name, "differently ")
                if problem is None and sensor_type.name in catalog:
                    problem = f"sensor type '{sensor_type.name}' is already provided by the hub"
                if problem:
                    self._fail(plugin_name, f"register_sensor_types returned an unusable type: {problem}")
                    continue
                catalog[sensor_type.name] = sensor_type
                owners[sensor_type.name] = plugin_name
        return catalog

    def _clash(self, what: str, first: str, second: str, how: str = "") -> None:
        """Two plugins (or one, twice) provide one name: a start-up error naming both."""
        pair = sorted((first, second))  # named alike whatever the call order
        by = f"twice by {self._describe(first)}" if first == second else (
            f"by two plugins: {self._describe(pair[0])} and {self._describe(pair[1])}"
        )
        raise PluginError(f"{what} is provided {how}{by}; uninstall one of them or load only one with SMARTANOM_PLUGINS")

    def call_each_sync(self, hook_name: str, **kwargs: Any) -> list[tuple[str, Any]]:
        """Call a hook through pluggy; each plugin's result with its name, failures left out."""
        with isolation.collect(hook_name) as results:
            getattr(self.pm.hook, hook_name)(**kwargs)
        return results

    async def call_each(self, hook_name: str, **kwargs: Any) -> list[tuple[str, Any]]:
        """Like call_each_sync, then await each plugin's coroutine in turn (each isolated)."""
        results = []
        for plugin_name, result in self.call_each_sync(hook_name, **kwargs):
            if inspect.isawaitable(result):
                result = await result  # isolation.isolate made it log and return FAILED on error
                if result is isolation.FAILED:
                    continue
                self._trace(hook_name, plugin_name, kwargs, result)
            results.append((plugin_name, result))
        return results

    def listen(self, bus) -> list:
        """Subscribe the on_reading / on_device_status hooks to the bus, if any plugin
        implements them (no cost on the hot path otherwise). Returns unsubscribers."""
        hook = self.pm.hook
        unsubscribe = []
        if hook.on_reading.get_hookimpls():
            unsubscribe.append(bus.subscribe(SensorReading, self._listener(hook.on_reading, "reading")))
        if hook.on_device_status.get_hookimpls():
            unsubscribe.append(bus.subscribe(DeviceStatusChanged, self._listener(hook.on_device_status, "change")))
        return unsubscribe

    def _listener(self, hook, argument: str):
        publishing = self.publishing

        def listener(event) -> None:
            # While it runs, the hub view queues what the hooks publish (hubview.Publishing).
            publishing.listening += 1
            try:
                hook(**{argument: event})
            finally:
                publishing.listening -= 1

        return listener

    def report(self, plugin_name: str, message: str, exc_info: tuple | None = None) -> None:
        """Record and log a problem with what a plugin handed over (e.g. an unusable route),
        or an error it raised outside a hook (in a route's handler: `exc_info`)."""
        self._fail(plugin_name, message, exc_info[1] if exc_info else None)

    def describe(self, plugin_name: str) -> str:
        """`name (package version)`, how every report names a plugin."""
        return self._describe(plugin_name)

    def platform_providers(self) -> dict[str, str]:
        """Each platform name -> the description of the plugin providing it."""
        return {platform: self._describe(owner) for platform, owner in self.platform_owner.items()}

    def _describe(self, plugin_name: str) -> str:
        record = self.records.get(plugin_name)
        if record and record.package:
            return f"{plugin_name} ({record.package} {record.version})"
        return plugin_name

    def _fail(self, plugin_name: str, message: str, exc: BaseException | None = None, *, loaded: bool = True) -> None:
        record = self.records.setdefault(plugin_name, PluginRecord(plugin_name))
        record.errors.append(message)
        del record.errors[:-MAX_ERRORS]
        record.loaded = record.loaded and loaded
        # A hook on the hot path (on_reading) may fail for every reading: the first
        # failure of each kind is logged at once, then at most one a minute.
        if self._error_log.allow((plugin_name, message.split(":", 1)[0])):
            more = f" ({self._error_log.skipped} more like it not logged)" if self._error_log.skipped else ""
            log.error("Plugin %s %s%s", self._describe(plugin_name), message, more, exc_info=exc)

    def _trace(self, hook_name: str, plugin_name: str, kwargs: dict, result: Any) -> None:
        if self.trace:
            log.info("hook %s(%s) on %s -> %r", hook_name, ", ".join(kwargs), plugin_name, result)


def _package(ep: metadata.EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    return dist.name if dist else ""


def _platform_problem(platform: object) -> str | None:
    """Why the hub could not run this platform, or None. Caught here, at start-up,
    rather than as a confusing error when the first instance starts."""
    if not isinstance(platform, Platform):
        return f"{platform!r} is not a smartanom.Platform"
    if not isinstance(platform.name, str) or not platform.name:
        return f"{platform!r} has no name"
    run = platform.run
    if not (inspect.iscoroutinefunction(run) or inspect.iscoroutinefunction(getattr(run, "__call__", None))):
        return f"'{platform.name}': run must be an `async def` function taking the PluginContext"
    if not (isinstance(platform.options, type) and issubclass(platform.options, PlatformOptions)):
        return f"'{platform.name}': options must be a subclass of smartanom.PlatformOptions"
    return None


def _output_kind_problem(kind: object) -> str | None:
    if not isinstance(kind, OutputKind):
        return f"{kind!r} is not a smartanom.OutputKind"
    if not isinstance(kind.name, str) or not kind.name:
        return f"{kind!r} has no name"
    if not callable(kind.create):
        return f"'{kind.name}': create must be a callable (options, ctx) -> driver"
    if not (isinstance(kind.options, type) and issubclass(kind.options, OutputOptions)):
        return f"'{kind.name}': options must be a subclass of smartanom.OutputOptions"
    return None
