"""The `smartanom` command: run the hub, check a config, list plugins.

Installer mistakes (config errors, plugin clashes, a busy port) end with a
message that says what to fix and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import gc
import logging
import os
import signal
import socket
import sys

from smartanom.alerts.rules import skipped_for_unit as alert_notes
from smartanom import backup_cli, logsetup, schema
from smartanom.auth import RedactTokens
from smartanom.calibration import cli as calibrate_cli
from smartanom.config import load_config
from smartanom.errors import ConfigError, PluginError
from smartanom.plugins import PluginHost
from smartanom.storage import REFUSE_AT, WAKE_AT

log = logging.getLogger("smartanom")

DEFAULT_CONFIG = "config/smartanom.yaml"
SWITCH_INTERVAL = 0.001  # seconds


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def _log_level(text: str) -> str:
    level = text.upper()
    if level not in LOG_LEVELS:
        raise argparse.ArgumentTypeError(f"{text!r} is not one of {', '.join(LOG_LEVELS)}")
    return level


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number (0-65535; 0 picks a free one)")
    return port


def main(argv: list[str] | None = None) -> int:
    # --log-level works before or after the subcommand (`smartanom run --log-level DEBUG`).
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--log-level", type=_log_level, default=argparse.SUPPRESS, help="DEBUG, INFO, WARNING or ERROR (default INFO, or $SMARTANOM_LOG_LEVEL)")
    parser = argparse.ArgumentParser(prog="smartanom", description="SmarTanom Hub: hydroponic sensor monitoring", parents=[common])
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="start the hub", parents=[common])
    run.add_argument("--config", default=os.environ.get("SMARTANOM_CONFIG", DEFAULT_CONFIG), help=f"YAML config file (default {DEFAULT_CONFIG}, or $SMARTANOM_CONFIG)")
    run.add_argument("--host", help="address to listen on (overrides server.host)")
    run.add_argument("--port", type=_port, help="port to listen on (overrides server.port)")

    check = sub.add_parser("check-config", help="validate a config file and exit", parents=[common])
    check.add_argument("config", nargs="?", default=os.environ.get("SMARTANOM_CONFIG", DEFAULT_CONFIG))

    sub.add_parser("plugins", help="list installed plugins and their platforms", parents=[common])
    backup_cli.add_commands(sub, common, DEFAULT_CONFIG)
    calibrate_cli.add_parser(sub, [common])

    rebuild = sub.add_parser("rebuild-rollups", help="fold stored readings into the history rollups (progress bar, ETA)", parents=[common])
    rebuild.add_argument("--config", default=os.environ.get("SMARTANOM_CONFIG", DEFAULT_CONFIG), help="YAML config file whose storage.path is the database")
    rebuild.add_argument("--from-scratch", action="store_true", help="forget every rollup first (also those whose raw readings retention deleted)")

    args = parser.parse_args(argv)
    level = getattr(args, "log_level", None) or _env_log_level(parser)
    logsetup.configure(level)  # journald's format when systemd runs the hub (core/logsetup.py)
    for handler in logging.getLogger().handlers:
        handler.addFilter(RedactTokens())  # no token in any line, whoever logs it (docs/security.md)
    # One line per HTTP request would wear out a Pi's SD card; DEBUG shows them.
    logging.getLogger("tornado.access").setLevel(logging.DEBUG if level == "DEBUG" else logging.WARNING)
    try:
        if args.command == "run":
            return _run(args)
        if args.command == "check-config":
            return _check(args.config)
        if args.command == "rebuild-rollups":
            from smartanom.rollup_rebuild import main as rebuild_rollups

            return rebuild_rollups(_load(args.config)[1].storage.path, args.from_scratch)
        if args.command in ("backup", "restore"):
            return backup_cli.run(args, lambda path: _load(path)[1])
        if args.command == "calibrate":
            return calibrate_cli.run(args)
        return _plugins()
    except ConfigError as exc:
        print(f"Configuration error{'s' if len(exc.issues) > 1 else ''}:", file=sys.stderr)
        for issue in exc.issues:
            print(f"  {issue}", file=sys.stderr)
        return 2
    except PluginError as exc:
        print(f"Plugin error: {exc}", file=sys.stderr)
        return 2
    except schema.SchemaTooNew as exc:
        print(f"Cannot start: {exc}", file=sys.stderr)
        return 2


def _storage_warnings(config) -> list[str]:
    """Does one flush interval's worth of the configured plugins' readings fit under max_pending?"""
    registry = config.build_registry()
    rates = [i.options.readings_per_second(registry) for i in config.plugins]
    rate = sum(r for r in rates if r)
    store = config.storage
    held = rate * store.flush_interval
    room = int(store.max_pending * REFUSE_AT)
    if held < room * WAKE_AT / REFUSE_AT:
        return []
    # The writer is woken early, so this is not yet a refusal; but near it, one slow
    # write (an SD card's pause) turns into refused readings.
    verdict = "more than" if held >= room else "close to"
    return [
        f"{config.file}: storage.flush_interval {store.flush_interval:g} s at the plugins' {rate:g} readings/s "
        f"(plus whatever WebSocket clients send) gathers {held:.0f} readings per flush, {verdict} storage.max_pending "
        f"({store.max_pending}; new readings are refused from {room} held): raise max_pending or lower flush_interval"
    ]


def _env_log_level(parser: argparse.ArgumentParser) -> str:
    text = os.environ.get("SMARTANOM_LOG_LEVEL", "INFO")
    try:
        return _log_level(text)
    except argparse.ArgumentTypeError as exc:
        parser.error(f"SMARTANOM_LOG_LEVEL: {exc}")


def _load(path: str):
    plugins = PluginHost()
    plugins.load_entry_points()
    platforms = plugins.collect_platforms()
    return plugins, load_config(
        path, platforms, failed_plugins=plugins.failed, providers=plugins.platform_providers(),
        sensor_types=plugins.collect_sensor_types(), output_kinds=plugins.collect_outputs(),
    )


def _check(path: str) -> int:
    plugins, config = _load(path)
    if config.unavailable:
        print("Plugin entries that would not start:", file=sys.stderr)
        for issue in config.unavailable:
            print(f"  {issue}", file=sys.stderr)
        return 2
    for warning in _warnings(config):
        print(f"warning: {warning}", file=sys.stderr)
    problem = schema.check_file(config.storage.path)
    if problem:
        print(f"{config.file}: storage.path: {problem}", file=sys.stderr)
        return 2
    sensors = sum(len(d.sensors) for d in config.devices)
    counts = [_count(len(config.devices), 'device'), _count(sensors, 'sensor'), _count(len(config.plugins), 'plugin instance')]
    if config.outputs:
        control = config.control
        rules = len(control.schedules) + len(control.thresholds) + len(control.dosing)
        counts += [_count(len(config.outputs), "output"), _count(rules, "control rule")]
    print(f"{path}: OK ({', '.join(counts)})")
    return 0


def _warnings(config) -> list[str]:
    """Not errors, but probably not what the installer meant."""
    found = []
    if not config.devices:
        found.append(f"{config.file} defines no devices: the hub would serve nothing (see docs/configuration.md)")
    elif not config.plugins:
        found.append(f"{config.file} has no plugin instances: only WebSocket clients can send readings")
    found += _storage_warnings(config)
    if config.auth.enabled and config.auth.tokens_file:
        secrets = os.path.join(os.path.dirname(config.file), config.auth.tokens_file)
        try:
            if os.stat(secrets).st_mode & 0o077:
                found.append(f"{secrets} holds tokens but other users may read it: chmod 600 {secrets}")
        except OSError:
            pass  # a missing file is a config error, reported already
    found += [str(w) for w in config.warnings]
    path = os.path.abspath(config.storage.path)
    parent = os.path.dirname(path)
    while not os.path.exists(parent) and parent != os.path.dirname(parent):
        parent = os.path.dirname(parent)
    target = path if os.path.exists(path) else parent
    if not os.access(target, os.W_OK):
        found.append(f"storage.path {path}: {target} is not writable by this user; readings would only be kept in memory")
    found += alert_notes(config.devices, config.profiles)
    return found


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
    from smartanom.hub import Hub

    plugins, config = _load(args.config)
    if args.host is not None:
        config.server.host = args.host
    if args.port is not None:
        config.server.port = args.port
    hub = Hub(config, plugins)
    # The event loop shares the GIL with the storage writer and the history pool.
    # A thread that wants the GIL waits up to this long for it: Python's default
    # of 5 ms, a few times per round trip, is what a live reading would wait for
    # while an export is formatted (docs/perf.md, "Live readings during exports").
    sys.setswitchinterval(SWITCH_INTERVAL)
    return asyncio.run(_serve(hub))


async def _serve(hub) -> int:
    # Handlers first: a signal that arrives while the hub starts still stops it cleanly.
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, hub.reload_tokens)
    try:
        await hub.start()
    except OSError as exc:
        print(f"Cannot start: {_explain_start_error(exc, hub.config.server)}", file=sys.stderr)
        await hub.stop()
        return 2
    # What exists once the hub has started lives as long as it does: keep it out of
    # the cyclic collector's full passes, which otherwise hold the GIL (and so the
    # event loop) for tens of milliseconds while exports churn through objects.
    gc.freeze()
    registry = hub.registry
    log.info("Config %s: %s, %s", hub.config.file, _count(len(registry.devices), "device"), _count(len(registry.sensors), "sensor"))
    for device in registry.devices.values():
        sensors = ", ".join(f"{s.id}:{s.type}" for s in device.sensors)
        log.info("  device %d %r (offline after %g s): %s", device.id, device.name, device.offline_after, sensors or "no sensors")
    for instance in hub.config.plugins:
        device = instance.options.device
        log.info("  plugin instance %s: platform %s%s", instance.label, instance.platform.name, "" if device is None else f", device {device}")
    for output in hub.config.outputs:
        log.info("  output %s (%s, type %s, safe %s)", output.id, output.name, output.type, "on" if output.safe_state else "off")
    records = hub.plugins.records.values()
    log.info("Plugins loaded: %s", ", ".join(hub.plugins.describe(r.name) for r in records if r.loaded) or "none")
    failed = [hub.plugins.describe(r.name) for r in records if not r.loaded]
    if failed:
        log.error("Plugins that failed to load (see the errors above): %s", ", ".join(failed))
    for warning in _warnings(hub.config):
        log.warning("%s", warning)
    log.info("Storage: %s (flushed every %g s)", os.path.abspath(hub.storage.path), hub.storage.flush_interval)
    _log_access(hub)
    log.info("Serving on %s: open %s/ in a browser for the dashboard (protocol test page: %s/websocket-test/); Ctrl+C stops", hub.url, hub.url, hub.url)

    await stop.wait()
    log.info("Stopping: flushing storage")
    await hub.stop()
    log.info("Stopped")
    return 0



def _count(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _log_access(hub) -> None:
    """Who can reach the hub, and whether they need a token: the first question on a LAN."""
    server = hub.config.server
    everywhere = server.host in ("", "0.0.0.0", "::")
    if everywhere:
        scheme = "https" if server.ssl else "http"
        lan = [f"{scheme}://{address}:{hub.port}/" for address in _lan_addresses()]
        log.info("Listening on all interfaces%s", f": tablets on the network can open {', '.join(lan)}" if lan else "")
    tokens = hub.config.tokens
    if hub.auth.enabled:
        roles = {role: sum(1 for t in tokens if t.role == role) for role in ("read", "write")}
        log.info("Auth is on: %s (read %d, write %d); clients need one (docs/security.md)", _count(len(tokens), "token"), roles["read"], roles["write"])
    elif server.host not in ("127.0.0.1", "localhost", "::1"):
        log.warning(
            "Auth is off and the hub listens on %s: anyone who can reach it can send readings and set device status. "
            "Turn on auth (docs/security.md) or listen on 127.0.0.1",
            "all interfaces" if everywhere else server.host,
        )


def _lan_addresses() -> list[str]:
    # `ip` knows the machine's own addresses; asking it sends nothing on the network.
    import shutil
    import subprocess

    ip = shutil.which("ip")
    if not ip:
        return []
    try:
        out = subprocess.run([ip, "-o", "-4", "addr", "show", "scope", "global"], capture_output=True, text=True, timeout=2).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.split()[3].split("/")[0] for line in out.splitlines() if len(line.split()) > 3]


def _explain_start_error(exc: OSError, server) -> str:
    where = f"{server.host}:{server.port}"
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve the host name {server.host!r} ({exc.strerror}); use an IP address such as 127.0.0.1 or 0.0.0.0 (server.host or --host)"
    if exc.errno == errno.EADDRINUSE:
        return f"{where} is already in use by another program; choose another port with --port (or server.port)"
    if exc.errno == errno.EADDRNOTAVAIL:
        return f"{server.host} is not an address of this machine; use 127.0.0.1, 0.0.0.0 (all addresses) or one that `ip addr` lists (server.host or --host)"
    if exc.errno == errno.EACCES:
        return f"no permission to listen on {where}; ports below 1024 need root: choose a port above 1024 (--port or server.port)"
    return f"{exc} (while starting on {where})"


if __name__ == "__main__":
    sys.exit(main())
