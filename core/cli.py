"""The `smartanom` command: run the hub, check a config, list plugins.

Installer mistakes (config errors, plugin clashes, a busy port) end with a
message that says what to fix and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys

from core.config import load_config
from core.errors import ConfigError, PluginError
from core.plugins import PluginHost

log = logging.getLogger("smartanom")

DEFAULT_CONFIG = "config/smartanom.yaml"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="smartanom", description="SmarTanom Hub: hydroponic sensor monitoring")
    parser.add_argument("--log-level", default=os.environ.get("SMARTANOM_LOG_LEVEL", "INFO"), help="DEBUG, INFO, WARNING or ERROR (default INFO)")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="start the hub")
    run.add_argument("--config", default=os.environ.get("SMARTANOM_CONFIG", DEFAULT_CONFIG), help=f"YAML config file (default {DEFAULT_CONFIG})")
    run.add_argument("--host", help="address to listen on (overrides server.host)")
    run.add_argument("--port", type=int, help="port to listen on (overrides server.port)")

    check = sub.add_parser("check-config", help="validate a config file and exit")
    check.add_argument("config", nargs="?", default=os.environ.get("SMARTANOM_CONFIG", DEFAULT_CONFIG))

    sub.add_parser("plugins", help="list installed plugins and their platforms")

    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)-7s %(name)s: %(message)s", datefmt="%H:%M:%S")
    try:
        if args.command == "run":
            return _run(args)
        if args.command == "check-config":
            return _check(args.config)
        return _plugins()
    except ConfigError as exc:
        print(f"Configuration error{'s' if len(exc.issues) > 1 else ''}:", file=sys.stderr)
        for issue in exc.issues:
            print(f"  {issue}", file=sys.stderr)
        return 2
    except PluginError as exc:
        print(f"Plugin error: {exc}", file=sys.stderr)
        return 2


def _load(path: str):
    plugins = PluginHost()
    plugins.load_entry_points()
    platforms = plugins.collect_platforms()
    return plugins, load_config(path, platforms, failed_plugins=plugins.failed, providers=plugins.platform_providers())


def _check(path: str) -> int:
    plugins = PluginHost()
    plugins.load_entry_points()
    config = load_config(path, plugins.collect_platforms(), providers=plugins.platform_providers())
    if config.unavailable:
        print("Plugin entries that would not start:", file=sys.stderr)
        for issue in config.unavailable:
            print(f"  {issue}", file=sys.stderr)
        return 2
    sensors = sum(len(d.sensors) for d in config.devices)
    print(f"{path}: OK ({len(config.devices)} devices, {sensors} sensors, {len(config.plugins)} plugin instances)")
    return 0


def _plugins() -> int:
    plugins = PluginHost()
    plugins.load_entry_points()
    plugins.collect_platforms()
    print(f"{'NAME':<20} {'PACKAGE':<28} {'VERSION':<10} PLATFORMS")
    for record in plugins.records.values():
        platforms = ", ".join(record.platforms) or "-"
        print(f"{record.name:<20} {record.package:<28} {record.version:<10} {platforms}")
        if record.error:
            print(f"  ! {record.error}")
    return 0


def _run(args) -> int:
    from core.hub import Hub

    plugins, config = _load(args.config)
    if args.host is not None:
        config.server.host = args.host
    if args.port is not None:
        config.server.port = args.port
    hub = Hub(config, plugins)
    return asyncio.run(_serve(hub))


async def _serve(hub) -> int:
    try:
        await hub.start()
    except OSError as exc:
        server = hub.config.server
        print(f"Cannot start: {exc}. Is another program using {server.host}:{server.port}? Choose another with --port.", file=sys.stderr)
        await hub.stop()
        return 2
    registry = hub.registry
    log.info("Config %s: %d devices, %d sensors", hub.config.file, len(registry.devices), len(registry.sensors))
    for device in registry.devices.values():
        sensors = ", ".join(f"{s.id}:{s.type}" for s in device.sensors)
        log.info("  device %d %r (offline after %g s): %s", device.id, device.name, device.offline_after, sensors or "no sensors")
    for instance in hub.config.plugins:
        log.info("  plugin instance %s: platform %s, device %s", instance.label, instance.platform.name, instance.options.device)
    log.info("Plugins loaded: %s", ", ".join(hub.plugins.describe(n) for n in hub.plugins.records) or "none")
    log.info("Storage: %s (flushed every %g s)", os.path.abspath(hub.storage.path), hub.storage.flush_interval)
    log.info("Serving on %s: open %s/ in a browser for the dashboard (protocol test page: %s/websocket-test/); Ctrl+C stops", hub.url, hub.url, hub.url)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("Stopping: flushing storage")
    await hub.stop()
    log.info("Stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
