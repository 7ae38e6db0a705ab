"""`output_state`: every switch, sent to WebSocket clients (an extension, docs/websocket.md).

Clients of /ws/sensor-data/ get every output's; clients of /ws/device/{id}/ those
of the outputs that belong to that device. Sensor streams get none.
"""

from __future__ import annotations

import json

from smartanom.control.outputs import OutputChanged
from smartanom.protocol import format_timestamp


def output_state(event: OutputChanged) -> dict:
    options = event.output.options
    return {
        "type": "output_state",
        "output_id": options.id,
        "output_name": options.name,
        "device_id": options.device,
        "state": "on" if event.on else "off",
        "source": event.source,
        "reason": event.reason,
        "dry_run": event.dry_run,
        "ok": event.ok,
        "error": event.error,
        "timestamp": format_timestamp(event.timestamp),
    }


def attach(bus, fanout):
    """Stream every OutputChanged through the fan-out; returns the unsubscriber."""

    def send(event: OutputChanged) -> None:
        fanout.broadcast(json.dumps(output_state(event), separators=(",", ":")), device_id=event.output.options.device)

    return bus.subscribe(OutputChanged, send)
