"""JSON over HTTP: the registry with live status, sensor history, and the plugins.

Handlers are thin: they check parameters, ask the hub (or `core/history.py`,
which runs the SQL off the event loop) and shape JSON. Every API handler derives
from `JSONHandler`, so a check that applies to the whole API (such as an access
token) belongs in its `prepare()`, in one place. Errors are
{"error": {"code": ..., "message": ...}} with a matching HTTP status; a bad
parameter is a 400 that names it, an unknown id a 404. docs/api.md is the guide,
core/openapi.py the machine-readable description.
"""

from __future__ import annotations

import asyncio
import csv
import dataclasses
import io
import json
import logging
import re
import time
from datetime import datetime, timezone
from typing import TYPE_CHECKING
from urllib.parse import urlencode

import tornado.iostream
import tornado.web

from smartanom import cursors, history
from smartanom.auth import token_from_request
from smartanom.protocol import format_timestamp
from smartanom.throttle import LogThrottle

if TYPE_CHECKING:
    from smartanom.alerts.engine import AlertEngine
    from smartanom.auth import Authenticator
    from smartanom.watchdog import LoopWatchdog
    from smartanom.registry import Device, Registry, Sensor
    from smartanom.status import StatusTracker
    from smartanom.storage import Storage
    from smartanom.websocket import FanOut

log = logging.getLogger("smartanom.api")

# Readings (or buckets) per page: the default, and the most one request may ask for.
DEFAULT_LIMIT = 1000
MAX_LIMIT = 10000
# A CSV of a whole range goes out in chunks of this many rows, each fetched and
# formatted off the event loop, so a long export never holds up live readings.
CSV_CHUNK = 2000
# Rows formatted between two hand-overs of the GIL to the event loop (see _page_body).
JSON_SLICE = 250
# The longest rest HistoryLane takes after a job (seconds).
MAX_REST = 0.5

# `token` is the access token (core/auth.py), accepted on every route.
READINGS_PARAMETERS = ("since", "until", "limit", "order", "bucket", "format", "cursor", "calibration", "token")


class APIError(tornado.web.HTTPError):
    """An error the client can act on: HTTP status, stable code, message."""

    def __init__(self, status: int, code: str, message: str, parameter: str | None = None):
        super().__init__(status)
        self.code = code
        self.message = message
        self.parameter = parameter


def bad_parameter(name: str, message: str) -> APIError:
    return APIError(400, "INVALID_PARAMETER", f"parameter '{name}': {message}", name)


class JSONHandler(tornado.web.RequestHandler):
    """Base of every API handler. Collaborators come through `initialize` (core/web.py
    passes each route what it needs): the authenticator always, the registry, the
    status tracker and the history reader for the routes about devices and sensors."""

    def initialize(
        self, auth: "Authenticator", registry: "Registry | None" = None, status: "StatusTracker | None" = None,
        history: history.History | None = None,
    ) -> None:
        self.auth = auth
        self.registry = registry
        self.status = status
        self.history = history

    def prepare(self) -> None:
        # With auth on, every API route needs a token of either role (core/auth.py decides).
        auth = self.auth
        if auth.enabled:
            presented = token_from_request(self.request)
            if auth.identify(presented) is None:
                # An APIError is not logged again by Tornado; the access log has the request.
                problem = "no token was sent" if presented is None else "the token is not valid"
                raise APIError(401, "UNAUTHORIZED", f"{problem}: send 'Authorization: Bearer TOKEN' or ?token=TOKEN")

    def set_default_headers(self) -> None:
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.set_header("Cache-Control", "no-store")

    def send_json(self, data) -> None:
        self.finish(json.dumps(data))

    def write_error(self, status_code: int, **kwargs) -> None:
        self.clear_header("Content-Disposition")
        self.set_header("Content-Type", "application/json; charset=utf-8")
        if status_code == 401:
            self.set_header("WWW-Authenticate", 'Bearer realm="smartanom"')
        exc = kwargs.get("exc_info", (None, None))[1]
        if isinstance(exc, APIError):
            error = {"code": exc.code, "message": exc.message}
            if exc.parameter:
                error["parameter"] = exc.parameter
            return self.finish(json.dumps({"error": error}))
        code = {400: "BAD_REQUEST", 401: "UNAUTHORIZED", 404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED"}.get(status_code, "INTERNAL_ERROR")
        message = self._reason if status_code != 500 else "internal error; see the hub's log"
        if isinstance(exc, tornado.web.HTTPError) and exc.log_message:
            message = exc.log_message % exc.args if exc.args else exc.log_message
        self.finish(json.dumps({"error": {"code": code, "message": message}}))

    def device_or_404(self, device_id: str) -> "Device":
        device = self.registry.device(_int_or_none(device_id))
        if device is None:
            raise APIError(404, "UNKNOWN_DEVICE", f"no device with id {device_id!r}; see /api/devices")
        return device

    def sensor_or_404(self, sensor_id: str) -> "Sensor":
        sensor = self.registry.sensor(_int_or_none(sensor_id))
        if sensor is None:
            raise APIError(404, "UNKNOWN_SENSOR", f"no sensor with id {sensor_id!r}; see /api/sensors")
        return sensor


def sensor_json(sensor: "Sensor") -> dict:
    return {"id": sensor.id, "type": sensor.type, "unit": sensor.unit, "name": sensor.name, "device_id": sensor.device.id}


def device_json(status: "StatusTracker", device: "Device") -> dict:
    seen = status.last_reading_at(device.id)
    return {
        "id": device.id,
        "name": device.name,
        "status": status.of(device.id).value,
        "last_reading": format_timestamp(seen) if seen is not None else None,
        "offline_after": device.offline_after,
        "sensors": [sensor_json(s) for s in device.sensors],
    }


def reading_json(reading: history.Reading | None) -> dict | None:
    return None if reading is None else {"timestamp": format_timestamp(reading.ts), "value": reading.value}


def _latest_of(conn, sensor_ids: list[int]) -> list[history.Reading | None]:
    return [history.latest(conn, sensor_id) for sensor_id in sensor_ids]


class DevicesHandler(JSONHandler):
    def get(self) -> None:
        self.send_json({"devices": [device_json(self.status, d) for d in self.registry.devices.values()]})


class DeviceHandler(JSONHandler):
    def get(self, device_id: str) -> None:
        self.send_json(device_json(self.status, self.device_or_404(device_id)))


class SensorsHandler(JSONHandler):
    async def get(self) -> None:
        sensors = list(self.registry.sensors.values())
        latest = await self.history.run(_latest_of, [s.id for s in sensors])
        self.send_json({"sensors": [dict(sensor_json(s), latest=reading_json(r)) for s, r in zip(sensors, latest)]})


class SensorHandler(JSONHandler):
    async def get(self, sensor_id: str) -> None:
        sensor = self.sensor_or_404(sensor_id)
        latest = await self.history.run(history.latest, sensor.id)
        self.send_json(dict(sensor_json(sensor), latest=reading_json(latest)))


class ReadingsHandler(JSONHandler):
    """A sensor's stored readings, raw or as min/mean/max buckets, as JSON or CSV.

    Rows are fetched and formatted on the history pool, never on the event loop,
    one page or chunk at a time for all requests together (`HistoryLane`). A CSV
    without `limit` is the whole requested range, streamed in chunks.
    """

    parameters = READINGS_PARAMETERS  # the query parameters accepted (core/readings_batch.py takes others)

    def initialize(self, lane: "HistoryLane", **collaborators) -> None:
        super().initialize(**collaborators)
        self.lane = lane

    async def get(self, sensor_id: str) -> None:
        sensor = self.sensor_or_404(sensor_id)
        query, as_csv = self._parse(sensor)
        if as_csv and self.get_query_argument("limit", None) is None:
            return await self._stream_csv(sensor, query)
        params = {k: v[0].decode() for k, v in self.request.query_arguments.items() if k != "cursor"}
        head = {
            "sensor_id": sensor.id,
            "unit": sensor.unit,
            "order": "desc" if query.newest_first else "asc",
            "bucket": self.get_query_argument("bucket", None),
        }
        job = (_page_body, query, as_csv, head, self.request.path, params)
        if as_csv or not query.bucket:
            body, next_url = await self.lane.run(self.history, *job)
        else:
            # Buckets: SQLite aggregates (without the GIL) and few rows are formatted,
            # so chart queries run side by side on the pool as before.
            body, next_url = await self.history.run(*job)
        if next_url:
            self.set_header("Link", f'<{next_url}>; rel="next"')
        if as_csv:
            self._csv_headers(sensor)
        self.finish(body)

    def _parse(self, sensor: "Sensor") -> tuple[history.Query, bool]:
        for name, values in self.request.query_arguments.items():
            if name not in self.parameters:
                raise bad_parameter(name, f"unknown parameter; accepted: {', '.join(self.parameters)}")
            if len(values) > 1:
                raise bad_parameter(name, "given more than once")
        arg = self.get_query_argument
        since, until = parse_time("since", arg("since", None)), parse_time("until", arg("until", None))
        if since is not None and until is not None and since >= until:
            raise bad_parameter("until", "must be later than 'since'")
        limit = parse_limit(arg("limit", None))
        order = arg("order", "desc")
        if order not in ("desc", "asc"):
            raise bad_parameter("order", f"must be 'desc' (newest first) or 'asc' (oldest first), got {order!r}")
        bucket_name = arg("bucket", None)
        bucket = None
        if bucket_name is not None:
            bucket = history.BUCKETS.get(bucket_name)
            if bucket is None:
                raise bad_parameter("bucket", f"must be one of {', '.join(history.BUCKETS)}, got {bucket_name!r}")
        fmt = arg("format", None)
        if fmt not in (None, "json", "csv"):
            raise bad_parameter("format", f"must be 'json' or 'csv', got {fmt!r}")
        as_csv = fmt == "csv" or (fmt is None and "text/csv" in self.request.headers.get("Accept", ""))
        cursor = parse_cursor(arg("cursor", None), sensor.id, bucket)
        calibration = arg("calibration", "false")
        if calibration not in ("true", "false"):
            raise bad_parameter("calibration", f"must be 'true' (add each reading's raw value and calibration id) or 'false', got {calibration!r}")
        if calibration == "true" and bucket is not None:
            raise bad_parameter("calibration", "applies to raw readings, not to buckets")
        return history.Query(sensor.id, since, until, limit, order == "desc", bucket, cursor, calibration == "true"), as_csv

    def _csv_headers(self, sensor: "Sensor") -> None:
        self.set_header("Content-Type", "text/csv; charset=utf-8")
        self.set_header("Content-Disposition", f'attachment; filename="sensor-{sensor.id}-readings.csv"')

    async def _stream_csv(self, sensor: "Sensor", query: history.Query) -> None:
        self._csv_headers(sensor)
        query = dataclasses.replace(query, limit=CSV_CHUNK)
        first = True
        while True:
            chunk, cursor = await self.lane.run(self.history, _csv_chunk, query, first)
            first = False
            self.write(chunk)
            try:
                await self.flush()  # waits until the client has taken it: a slow reader slows only itself
            except tornado.iostream.StreamClosedError:
                return
            if cursor is None:
                break
            query = dataclasses.replace(query, cursor=cursor)
        self.finish()


class HistoryLane:
    """One formatting-heavy history job (a page of raw readings, a CSV chunk) at a
    time for all HTTP requests, each followed by a rest as long as the job took.

    A job's thread competes with the event loop for the GIL, and the loop is what
    carries live readings. So however many exports run, formatting takes at most
    about half of one thread's time, and a live reading's round trip stays short
    (bench/exports.py). A single request is not slowed: the rest comes after it.
    """

    def __init__(self) -> None:
        self._lock = asyncio.Lock()
        self._free_at = 0.0

    async def run(self, history_: history.History, fn, *args):
        async with self._lock:
            loop = asyncio.get_running_loop()
            if self._free_at > loop.time():
                await asyncio.sleep(self._free_at - loop.time())
            started = loop.time()
            try:
                return await history_.run(fn, *args)
            finally:
                now = loop.time()
                self._free_at = now + min(now - started, MAX_REST)


def _page_body(conn, query: history.Query, as_csv: bool, head: dict, path: str, params: dict) -> tuple[bytes, str | None]:
    """One page as a response body, and its `next` URL. Runs on the history pool."""
    page = history.fetch(conn, query)
    next_url = None
    if page.next_cursor is not None:
        next_url = f"{path}?{urlencode(dict(params, cursor=cursors.encode(query.sensor_id, query.bucket, page.next_cursor)))}"
    if as_csv:
        return _csv_rows(query, page.rows, header=True), next_url
    key = "buckets" if query.bucket else "readings"
    shape = _bucket_json if query.bucket else _calibrated_json if query.calibration else reading_json
    # json.dumps of a whole page is one C call that holds the GIL for tens of
    # milliseconds, and the event loop waits for the GIL: encode in slices.
    rows = ",".join(_encode_slice(page.rows[i : i + JSON_SLICE], shape) for i in range(0, len(page.rows), JSON_SLICE))
    body = json.dumps(dict(head, **{key: [], "next": next_url})).replace(f'"{key}": []', f'"{key}": [{rows}]', 1)
    return body.encode(), next_url


def _calibrated_json(reading: history.Reading) -> dict:
    return dict(reading_json(reading), raw=reading.raw, calibration_id=reading.calibration_id)


def _csv_chunk(conn, query: history.Query, header: bool) -> tuple[bytes, tuple[float, int] | float | None]:
    page = history.fetch(conn, query)
    return _csv_rows(query, page.rows, header), page.next_cursor


def _encode_slice(rows: list, shape) -> str:
    text = json.dumps([shape(r) for r in rows])[1:-1]
    time.sleep(0)  # hand the GIL to the event loop now, if it waits, rather than at the switch interval
    return text


def _csv_rows(query: history.Query, rows: list, header: bool) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    if query.bucket:
        columns, cells = ["timestamp", "min", "mean", "max", "count"], lambda b: [format_timestamp(b.start), b.min, b.mean, b.max, b.count]
    elif query.calibration:
        columns, cells = ["timestamp", "value", "raw", "calibration_id"], lambda r: [format_timestamp(r.ts), r.value, r.raw, r.calibration_id]
    else:
        columns, cells = ["timestamp", "value"], lambda r: [format_timestamp(r.ts), r.value]
    if header:
        writer.writerow(columns)
    for i in range(0, len(rows), JSON_SLICE):
        writer.writerows(map(cells, rows[i : i + JSON_SLICE]))
        time.sleep(0)  # as in _encode_slice
    return out.getvalue().encode()


def _bucket_json(bucket: history.Bucket) -> dict:
    return {
        "timestamp": format_timestamp(bucket.start),
        "min": bucket.min,
        "mean": bucket.mean,
        "max": bucket.max,
        "count": bucket.count,
    }


# A '+' in a query string means a space, so an unencoded offset such as
# ...T10:00:00+02:00 arrives as ...T10:00:00 02:00; take it back.
_SPACED_OFFSET = re.compile(r"^(.*\d[T ]\d\d:\d\d(?::\d\d(?:\.\d+)?)?) (\d\d:?\d\d)$")


def parse_time(name: str, text: str | None) -> float | None:
    """An ISO 8601 query bound -> epoch seconds. No offset means UTC, as on the WebSocket API."""
    if text is None:
        return None
    cleaned = _SPACED_OFFSET.sub(r"\1+\2", text.strip())
    if cleaned.endswith(("Z", "z")):
        cleaned = cleaned[:-1] + "+00:00"  # Python 3.10's fromisoformat does not take 'Z'
    try:
        moment = datetime.fromisoformat(cleaned)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=timezone.utc)
        return moment.timestamp()
    except (ValueError, OverflowError, OSError):
        raise bad_parameter(name, f"{text[:64]!r} is not an ISO 8601 time such as 2025-09-11T15:30:00Z") from None


def parse_limit(text: str | None) -> int:
    if text is None:
        return DEFAULT_LIMIT
    try:
        limit = int(text)
    except ValueError:
        limit = 0
    if not 1 <= limit <= MAX_LIMIT:
        raise bad_parameter("limit", f"must be a whole number from 1 to {MAX_LIMIT}, got {text[:32]!r}; page with 'next' for more")
    return limit


def parse_cursor(text: str | None, sensor_id: int, bucket: int | None) -> tuple[float, int] | float | None:
    """The `cursor` of a `next` link back into a history.Query cursor (core/cursors.py)."""
    if text is None:
        return None
    try:
        return cursors.decode(text, sensor_id, bucket)
    except ValueError as exc:
        raise bad_parameter("cursor", f"{exc}; copy the whole 'next' URL of the same query") from None


class NotFoundHandler(JSONHandler):
    """Any other /api/ URL: a JSON 404 rather than Tornado's HTML page."""

    def prepare(self) -> None:
        super().prepare()
        raise APIError(404, "NOT_FOUND", f"no API endpoint {self.request.path}; see /api/openapi.json")


class PluginsHandler(JSONHandler):
    def initialize(self, auth: "Authenticator", records: dict, instances: dict, hub_view=None) -> None:
        super().initialize(auth)
        self.records = records  # PluginHost.records: name -> PluginRecord
        self.instances = instances  # Hub.instances: label -> InstanceState (filled as they start)
        self.hub_view = hub_view  # hubview.Publishing: readings published through the hub view

    def get(self) -> None:
        self.send_json(
            {
                "plugins": [r.as_dict() for r in self.records.values()],
                "instances": [s.as_dict() for s in self.instances.values()],
                **({"hub_view": self.hub_view.as_dict()} if self.hub_view else {}),
            }
        )


class HealthWatch:
    """Logs the health a probe sees when it changes, and a reminder at most once a minute.

    A monitoring probe asks every few seconds; a 503 per probe in the log would
    bury everything else (the access log line of a health answer is DEBUG).
    """

    def __init__(self) -> None:
        self.problems: list[str] = []
        self.reminder = LogThrottle()

    def saw(self, problems: list[str]) -> None:
        if bool(problems) == bool(self.problems):
            self.problems = problems
            if problems and self.reminder.allow():
                log.warning("Health still degraded (%d probes since the last line): %s", self.reminder.skipped, "; ".join(problems))
            return
        if problems:
            log.error("Health degraded: %s", "; ".join(problems))
        else:
            log.warning("Health ok again")
        self.problems = problems
        self.reminder.reset()
        self.reminder.allow()


class HealthHandler(JSONHandler):
    """For monitoring probes: 200 when all is well, 503 when storage is failing,
    a reading was ever dropped, or a plugin is crash-looping. HEAD answers like GET."""

    quiet_log = True  # HealthWatch logs changes instead (core/websurface.log_request)

    def initialize(
        self, auth: "Authenticator", storage: "Storage", fanout: "FanOut", instances: dict, started_at: float,
        watchdog: "LoopWatchdog | None", alerts: "AlertEngine", watch: HealthWatch,
    ) -> None:
        super().initialize(auth)
        self.alerts = alerts
        self.watchdog = watchdog
        self.storage = storage
        self.fanout = fanout
        self.instances = instances
        self.started_at = started_at
        self.watch = watch

    def head(self) -> None:
        self.get()  # Tornado sends the headers without the body

    def get(self) -> None:
        storage, stats = self.storage, self.fanout.stats
        instances = [s.as_dict() for s in self.instances.values()]
        problems = []
        if storage.error is not None:
            problems.append(storage.error)
        if storage.dropped:
            problems.append(f"{storage.dropped} accepted readings were dropped, not stored (see the log)")
        problems += [f"plugin instance {i['label']} is {i['state']}: {i['last_error']}" for i in instances if i["state"] == "restarting"]
        # Reported by a running instance (PluginContext.set_problem): not a crash, but its device gets no data.
        problems += [f"plugin instance {i['label']}: {i['stats']['problem']} (since {i['stats']['problem_since']})"
                     for i in instances if i["stats"].get("problem")]
        if self.alerts.store.error is not None:
            problems.append(f"alerts cannot be stored: {self.alerts.store.error}")
        started = self.started_at
        self.watch.saw(problems)
        self.set_status(503 if problems else 200)
        self.send_json(
            {
                "status": "degraded" if problems else "ok",
                "problems": problems,
                "started_at": format_timestamp(started) if started else None,
                "uptime": round(time.time() - started, 3) if started else 0.0,
                "plugins": instances,
                "clients": len(self.fanout.connections),
                "loop": self.watchdog.as_dict() if self.watchdog is not None else None,
                "readings": {
                    "accepted": storage.accepted,
                    "stored": storage.stored,
                    "dropped": storage.dropped,
                    "pending": storage.pending,
                },
                "storage": {
                    "path": str(storage.path),
                    "ok": storage.error is None,
                    "error": storage.error,
                    "lag": round(storage.lag, 3),
                    "purged": storage.purged,
                },
                "alerts": self.alerts.health(),
                "websocket": {
                    "errors": stats.errors,
                    "rate_limited": stats.rate_limited,
                    "unauthorized": stats.unauthorized,
                    "too_slow": stats.too_slow,
                },
            }
        )


def _int_or_none(text: str) -> int | None:
    return int(text) if text.isdigit() else None
