"""`smartanom calibrate`: the guided calibration in a terminal, through the running hub's HTTP API.

    smartanom calibrate 3                     # pH probe: buffers 7, 4, 10
    smartanom calibrate 3 --standards 7,4     # two-point
    smartanom calibrate 4 --standards 1.413   # EC, one point (in the sensor's unit)
    smartanom calibrate 3 --status            # the current calibration and whether it is due
    smartanom calibrate 3 --cancel

The hub does the work (stability, fit, saving); this only relays what the grower
is asked and does. Ctrl+C, end of input or 'q' cancels, and nothing is applied.
"""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.error
import urllib.request

POLL = 0.5  # seconds between looks at a measuring session
DEFAULT_URL = "http://127.0.0.1:8000"


def add_parser(sub, parents) -> None:
    cal = sub.add_parser("calibrate", help="calibrate a sensor, guided, through the running hub", parents=parents)
    cal.add_argument("sensor", type=int, help="sensor id")
    cal.add_argument("--standards", help="comma-separated true values of the standards, in the order used (default: pH 7,4,10; EC 1.413 mS/cm)")
    cal.add_argument("--temperature", type=float, help="temperature of the standards in C (pH slope report; default 25)")
    cal.add_argument("--url", default=os.environ.get("SMARTANOM_URL", DEFAULT_URL), help=f"the hub (default $SMARTANOM_URL or {DEFAULT_URL})")
    cal.add_argument("--token", default=os.environ.get("SMARTANOM_TOKEN"), help="a write token when auth is on (default $SMARTANOM_TOKEN)")
    cal.add_argument("--status", action="store_true", help="show the sensor's calibration and exit")
    cal.add_argument("--cancel", action="store_true", help="cancel the sensor's calibration session and exit")


class HubError(Exception):
    pass


class _Client:
    def __init__(self, url: str, token: str | None):
        self.url = url.rstrip("/")
        self.token = token

    def call(self, method: str, path: str, body: dict | None = None) -> dict:
        data = None if body is None and method == "GET" else json.dumps(body or {}).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method)
        request.add_header("Content-Type", "application/json")
        if self.token:
            request.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            try:
                message = json.loads(exc.read())["error"]["message"]
            except (ValueError, KeyError, TypeError):
                message = exc.reason
            if exc.code in (401, 403):  # the hub's words are for any client; say how this one sends a token
                message += "; give a write token with --token or $SMARTANOM_TOKEN"
            raise HubError(f"{exc.code}: {message}") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise HubError(f"cannot reach the hub at {self.url} ({reason}); is it running? (--url or $SMARTANOM_URL)") from None


def run(args, out=sys.stdout, read_line=None) -> int:
    read_line = read_line or sys.stdin.readline
    client = _Client(args.url, args.token)
    path = f"/api/calibration/{args.sensor}"
    try:
        if args.status:
            print(json.dumps(client.call("GET", path), indent=2), file=out)
            return 0
        if args.cancel:
            print(client.call("DELETE", path)["message"], file=out)
            return 0
        body = {}
        if args.standards:
            try:
                body["standards"] = [float(v) for v in args.standards.split(",")]
            except ValueError:
                print(f"--standards: {args.standards!r} is not a comma-separated list of numbers", file=sys.stderr)
                return 2
        if args.temperature is not None:
            body["temperature"] = args.temperature
        session = client.call("POST", path, body)
    except HubError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    try:
        return _guide(client, path, session, out, read_line)
    except KeyboardInterrupt:
        return _cancel(client, path, out, "interrupted")
    except HubError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def _guide(client: _Client, path: str, session: dict, out, read_line) -> int:
    said = None
    while True:
        state = session["state"]
        if session["message"] != said:
            print(session["message"], file=out, flush=True)
            said = session["message"]
        if state in ("waiting", "unstable"):
            print("Press Enter when the probe is in place (q to cancel): ", end="", file=out, flush=True)
            answer = read_line()
            if not answer or answer.strip().lower() in ("q", "quit", "cancel"):
                return _cancel(client, path, out, "cancelled")
            said = client.call("POST", path + "/measure")["message"]
            print(said, file=out, flush=True)
            session = _wait(client, path, out)
            continue
        if state == "saving":
            time.sleep(POLL)
            session = client.call("GET", path)["session"]
            continue
        report = session.get("report")
        if report:
            _print_report(report, out, applied=state == "done")
        return 0 if state == "done" else 1


def _wait(client: _Client, path: str, out) -> dict:
    shown = None
    while True:
        session = client.call("GET", path)["session"]
        if session["state"] != "measuring":
            return session
        progress = session.get("progress") or {}
        if progress.get("last_raw") is not None:
            line = f"  {progress['seconds']:.0f} s: raw {progress['last_raw']:.4g}, spread {progress['spread']:.3g} (stable within {progress['spread_allowed']:.3g})"
            if line != shown:
                print(line, file=out, flush=True)
                shown = line
        time.sleep(POLL)


def _cancel(client: _Client, path: str, out, why: str) -> int:
    try:
        session = client.call("DELETE", path)
        print(f"{why}: {session['message']}", file=out)
    except HubError as exc:
        print(f"{why}; cancelling failed: {exc}", file=sys.stderr)
    return 1


def _print_report(report: dict, out, applied: bool) -> None:
    if "slope_percent" in report:
        slopes = ", ".join(f"{s:g} %" for s in report["slope_percent"])
        print(f"Slope: {slopes} of Nernst; offset {report['offset_mv']:+g} mV at pH 7; verdict: {report['verdict']}", file=out)
    line = f"value = {report['slope']:.5g} x raw {report['offset']:+.5g}"
    print(f"Calibration applied: {line}" if applied else f"Not applied (it would have been {line})", file=out)
