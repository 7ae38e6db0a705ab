"""Live round trip, measured from outside the hub's process.

    python bench/roundtrip.py HOST PORT SENSOR RATE SECONDS

Publishes on /ws/sensor/SENSOR/ at RATE readings/s; each reading's value is
its send time, and the hub's echo on the same stream (the sensor_data_update
every subscriber of that sensor gets) closes the round trip. Prints JSON:
samples and p50/p90/p99/max in ms.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from wsclient import WsClient  # noqa: E402


async def main(host: str, port: int, sensor: int, rate: float, seconds: float) -> dict:
    latencies: list[float] = []

    def on_frames(_client, payloads, received_at) -> None:
        for payload in payloads:
            if b'"sensor_data_update"' in payload:
                latencies.append(received_at - json.loads(payload)["value"])

    client = await WsClient.connect(host, port, f"/ws/sensor/{sensor}/", on_frames=on_frames, keep_payloads=True)
    start = next_at = time.perf_counter()
    while (now := time.perf_counter()) - start < seconds:
        if now >= next_at:
            client.send([b'{"type":"sensor_data","value":%r}' % time.perf_counter()])
            next_at += 1 / rate
        await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
    deadline = time.perf_counter() + 5
    while len(latencies) < client.sent and time.perf_counter() < deadline:
        await asyncio.sleep(0.05)
    client.close()
    latencies.sort()
    pick = lambda q: round(latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000, 2) if latencies else None  # noqa: E731
    return {"sent": client.sent, "samples": len(latencies), "p50_ms": pick(0.5), "p90_ms": pick(0.9), "p99_ms": pick(0.99), "max_ms": pick(1.0)}


if __name__ == "__main__":
    host, port, sensor, rate, seconds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5])
    print(json.dumps(asyncio.run(main(host, port, sensor, rate, seconds))))
