"""The yardstick: a minimal bare-Tornado broadcast server, measured beside the hub.

It does what any WebSocket broadcaster must (parse the client's JSON, look the
sensor up, json.dumps the update once, write_message it to each subscriber)
and nothing else: no validation beyond the lookup, no storage, no device
status. bench/run.py drives it with the same load as the hub and prints the
hub's figures as ratios to it.

    python bench/bare_server.py --config bench/bench.yaml --port 0
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import time

import tornado.httpserver
import tornado.netutil
import tornado.web
import yaml
from tornado.websocket import WebSocketClosedError, WebSocketHandler

from smartanom.registry import SENSOR_TYPES


class BroadcastHandler(WebSocketHandler):
    def initialize(self, sensors: dict, groups: dict) -> None:
        self.sensors = sensors
        self.groups = groups  # None -> every reading; sensor id -> that sensor's readings

    def open(self, sensor_id: str | None = None) -> None:
        self.sensor_id = int(sensor_id) if sensor_id else None
        self.group = self.groups.setdefault(self.sensor_id, set())
        self.group.add(self)
        self.set_nodelay(True)

    def on_close(self) -> None:
        self.group.discard(self)

    def on_message(self, message) -> None:
        data = json.loads(message)
        sensor = self.sensors.get(data.get("sensor_id", self.sensor_id))
        if sensor is None:
            self.write_message(json.dumps({"type": "error", "message": "unknown sensor", "code": "UNKNOWN_SENSOR"}))
            return
        text = json.dumps(
            {
                "type": "sensor_data_update",
                **sensor,
                "value": data["value"],
                "unit": SENSOR_TYPES[sensor["sensor_type"]],
                "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            },
            separators=(",", ":"),
        )
        for group in (self.groups.get(None), self.groups.get(sensor["sensor_id"])):
            if group:
                for conn in tuple(group):
                    try:
                        conn.write_message(text)
                    except WebSocketClosedError:
                        pass


def load_sensors(path: str) -> dict:
    with open(path) as f:
        config = yaml.safe_load(f)
    return {
        s["id"]: {"sensor_id": s["id"], "sensor_type": s["type"], "device_id": d["id"], "device_name": d["name"]}
        for d in config["devices"]
        for s in d.get("sensors", [])
    }


async def serve(config: str, host: str, port: int) -> None:
    args = {"sensors": load_sensors(config), "groups": {}}
    app = tornado.web.Application(
        [(r"/ws/sensor-data/?", BroadcastHandler, args), (r"/ws/sensor/([0-9]+)/?", BroadcastHandler, args)]
    )
    sockets = tornado.netutil.bind_sockets(port, host)
    server = tornado.httpserver.HTTPServer(app)
    server.add_sockets(sockets)
    # bench/run.py waits for this line, as it does for the hub's.
    print(f"Serving on http://{host}:{sockets[0].getsockname()[1]}", file=sys.stderr, flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    server.stop()
    await server.close_all_connections()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    asyncio.run(serve(args.config, args.host, args.port))


if __name__ == "__main__":
    main()
