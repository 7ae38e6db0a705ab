"""The load generator: a separate process that drives a server over real WebSockets.

Run by bench/run.py as `python bench/load.py '<json spec>'`; prints one JSON
object with its measurements on stdout. Modes:

saturate  publishers on /ws/sensor/{id}/ keep `window` readings unacknowledged
          (a publisher's own echo is its acknowledgement), with `subscribers`
          dashboards on /ws/sensor-data/ and `sensor_subscribers` on per-sensor
          streams; measures accepted and delivered rates and the server's CPU.
rate      the same connections at a fixed offered rate; each reading's value
          is its send time, so every subscriber's receipt gives one latency.
          With `flood_window` > 0 one more publisher floods meanwhile (as in
          saturate, on its own sensor): the paced readings' latency then shows
          whether a flooding client can starve the others.
idle      opens many idle dashboard connections and measures the server's RSS.

Every mode counts what each connection received against what it should have
received, so any loss is reported.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from proc import cpu_seconds, memory_kb, raise_open_files_limit  # noqa: E402
from wsclient import WsClient  # noqa: E402


async def _connect_many(host: str, port: int, paths: list[str], batch: int = 200, **kwargs) -> list[WsClient]:
    clients: list[WsClient] = []
    for start in range(0, len(paths), batch):
        clients += await asyncio.gather(*(WsClient.connect(host, port, p, **kwargs) for p in paths[start : start + batch]))
    return clients


class Run:
    """The connections of a saturate or rate run, and their bookkeeping."""

    def __init__(self, spec: dict):
        self.spec = spec
        self.host, self.port, self.pid = spec["host"], spec["port"], spec["server_pid"]
        self.sending = True
        self.publishers: list[WsClient] = []
        self.subscribers: list[WsClient] = []
        self.sensor_subscribers: list[tuple[int, WsClient]] = []
        self.seq = 0

    async def open(self, on_echo=None, on_update=None, keep_payloads=False) -> None:
        spec, host, port = self.spec, self.host, self.port
        sensors = spec["publisher_sensors"]
        self.subscribers = await _connect_many(
            host, port, ["/ws/sensor-data/"] * spec["subscribers"], on_frames=on_update, keep_payloads=keep_payloads
        )
        watched = [sensors[k % len(sensors)] for k in range(spec["sensor_subscribers"])]
        clients = await _connect_many(host, port, [f"/ws/sensor/{s}/" for s in watched])
        self.sensor_subscribers = list(zip(watched, clients))
        self.publishers = await _connect_many(host, port, [f"/ws/sensor/{s}/" for s in sensors], on_frames=on_echo)
        for sensor_id, pub in zip(sensors, self.publishers):
            pub.sensor_id = sensor_id

    async def add_flooder(self, sensor_id: int, window: int) -> WsClient:
        """A publisher that keeps `window` readings in flight, as fast as the server takes them."""

        def refill(pub: WsClient, _payloads, _now) -> None:
            answered = pub.new_readings + pub.new_errors
            if self.sending and answered:
                pub.send([self.message(pub, -1.0)] * answered)

        flooder = await WsClient.connect(self.host, self.port, f"/ws/sensor/{sensor_id}/", on_frames=refill)
        flooder.sensor_id = sensor_id
        self.publishers.append(flooder)
        flooder.send([self.message(flooder, -1.0)] * window)
        return flooder

    def message(self, pub: WsClient, value) -> bytes:
        return b'{"type":"sensor_data","sensor_id":%d,"value":%r}' % (pub.sensor_id, value)

    def snapshot(self) -> dict:
        everyone = self.subscribers + [c for _, c in self.sensor_subscribers] + self.publishers
        return {
            "t": time.perf_counter(),
            "server_cpu": cpu_seconds(self.pid),
            "load_cpu": time.process_time(),
            "accepted": sum(p.readings for p in self.publishers),
            "delivered": sum(c.readings for c in everyone),
            "per_publisher": [p.readings for p in self.publishers],
        }

    def _expected(self) -> tuple[int, int]:
        accepted = sum(p.readings for p in self.publishers)
        by_sensor = {p.sensor_id: p.readings for p in self.publishers}
        expected = accepted * (len(self.subscribers) + 1) + sum(by_sensor[s] for s, _ in self.sensor_subscribers)
        everyone = self.subscribers + [c for _, c in self.sensor_subscribers] + self.publishers
        return expected, sum(c.readings for c in everyone)

    async def drain(self, quiet_timeout: float) -> None:
        """Stop sending; wait until every acknowledgement and delivery is in, or nothing moves for a while."""
        self.sending = False
        last, last_change = None, time.monotonic()
        while time.monotonic() - last_change < quiet_timeout:
            unacked = sum(p.sent - p.readings - p.errors for p in self.publishers)
            expected, delivered = self._expected()
            if unacked == 0 and delivered >= expected:
                return
            if (unacked, delivered) != last:
                last, last_change = (unacked, delivered), time.monotonic()
            await asyncio.sleep(0.05)

    def totals(self) -> dict:
        expected, delivered = self._expected()
        subs = [c.readings for c in self.subscribers]
        errors = [c.first_error.decode(errors="replace") for c in self.publishers if c.first_error]
        return {
            "sent": sum(p.sent for p in self.publishers),
            "accepted": sum(p.readings for p in self.publishers),
            "errors": sum(c.errors - c.refused for c in self.publishers + self.subscribers),
            "refused": sum(c.refused for c in self.publishers),
            "first_error": errors[0] if errors else None,
            "deliveries_expected": expected,
            "deliveries": delivered,
            "deliveries_lost": expected - delivered,
            "subscriber_min": min(subs, default=0),
            "subscriber_max": max(subs, default=0),
            "connections": len(self.subscribers) + len(self.sensor_subscribers) + len(self.publishers),
        }

    async def close(self) -> None:
        everyone = self.subscribers + [c for _, c in self.sensor_subscribers] + self.publishers
        for c in everyone:
            c.close()
        await asyncio.wait_for(asyncio.gather(*(c.closed for c in everyone)), 10)


def _window(a: dict, b: dict) -> dict:
    dt = b["t"] - a["t"]
    delivered = b["delivered"] - a["delivered"]
    server_cpu = b["server_cpu"] - a["server_cpu"]
    load_cpu = b["load_cpu"] - a["load_cpu"]
    rates = [(y - x) / dt for x, y in zip(a["per_publisher"], b["per_publisher"])]
    return {
        "seconds": round(dt, 3),
        "accepted_per_s": round((b["accepted"] - a["accepted"]) / dt, 1),
        "delivered_per_s": round(delivered / dt, 1),
        "server_cpu_fraction": round(server_cpu / dt, 3),
        "server_cpu_us_per_update": round(server_cpu / delivered * 1e6, 2) if delivered else None,
        "load_cpu_fraction": round(load_cpu / dt, 3),
        "publisher_rate_min": round(min(rates, default=0), 1),
        "publisher_rate_max": round(max(rates, default=0), 1),
    }


async def saturate(spec: dict) -> dict:
    run = Run(spec)
    window = spec["window"]

    def on_echo(pub: WsClient, _payloads, _now) -> None:
        # Each answer (its echo, or an error, which is counted and reported) frees
        # one slot of the publisher's window: refill it at once.
        answered = pub.new_readings + pub.new_errors
        if run.sending and answered:
            run.seq += answered
            pub.send([run.message(pub, run.seq - k) for k in range(answered)])

    await run.open(on_echo=on_echo)
    for pub in run.publishers:
        run.seq += window
        pub.send([run.message(pub, run.seq - k) for k in range(window)])
    await asyncio.sleep(spec["warmup"])
    a = run.snapshot()
    await asyncio.sleep(spec["duration"])
    b = run.snapshot()
    await run.drain(spec["drain_timeout"])
    result = {"window": _window(a, b), "totals": run.totals()}
    await run.close()
    return result


def _percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(q / 100 * len(sorted_values)) - 1))
    return sorted_values[index]


async def rate(spec: dict) -> dict:
    run = Run(spec)
    latencies: list[float] = []
    # (seconds since recording began, latency ms) of every receipt, when asked for (to study tails).
    samples: list | None = [] if spec.get("samples_file") else None
    state = {"record_from": float("inf")}

    def on_update(_client, payloads, received_at) -> None:
        for payload in payloads:
            # The flooder's values are -1: skip them without parsing (cheap at high rates).
            if payload[9:10] == b"s" and b'"value":-1.0,' not in payload:
                sent_at = json.loads(payload)["value"]
                if sent_at >= state["record_from"]:
                    latencies.append(received_at - sent_at)
                    if samples is not None:
                        samples.append((round(sent_at - state["record_from"], 6), round((received_at - sent_at) * 1e3, 3)))

    await run.open(on_update=on_update, keep_payloads=True)
    publishers = list(run.publishers)
    flooder = None
    if spec.get("flood_window"):
        flooder = await run.add_flooder(spec["flood_sensor"], spec["flood_window"])
    interval = 1.0 / spec["rate"]

    async def pace(seconds: float) -> None:
        start = time.perf_counter()
        next_at, k = start, 0
        while run.sending:
            now = time.perf_counter()
            if now - start >= seconds:
                return
            while next_at <= now:
                pub = publishers[k % len(publishers)]
                pub.send([run.message(pub, time.perf_counter())])
                k += 1
                next_at += interval
            await asyncio.sleep(max(0.0, next_at - time.perf_counter()))

    await pace(spec["warmup"])
    state["record_from"] = time.perf_counter()
    a = run.snapshot()
    await pace(spec["duration"])
    b = run.snapshot()
    await run.drain(spec["drain_timeout"])
    latencies.sort()
    if samples is not None:
        with open(spec["samples_file"], "w") as f:
            json.dump(samples, f)
    ms = lambda q: round(_percentile(latencies, q) * 1e3, 3)  # noqa: E731
    result = {
        "window": _window(a, b),
        "flood_accepted_per_s": round((b["per_publisher"][-1] - a["per_publisher"][-1]) / (b["t"] - a["t"]), 1) if flooder else None,
        "latency_ms": {"samples": len(latencies), "p50": ms(50), "p90": ms(90), "p95": ms(95), "p99": ms(99), "max": ms(100)},
        "totals": run.totals(),
    }
    await run.close()
    return result


async def idle(spec: dict) -> dict:
    host, port, pid = spec["host"], spec["port"], spec["server_pid"]
    # A few connections first, so code paths and caches that any first
    # connection warms are not charged to the idle ones.
    warm = await _connect_many(host, port, ["/ws/sensor-data/"] * 5)
    for c in warm:
        c.close()
    await asyncio.sleep(0.5)
    before = memory_kb(pid)
    clients = await _connect_many(host, port, ["/ws/sensor-data/"] * spec["connections"])
    await asyncio.sleep(spec["settle"])
    after = memory_kb(pid)
    for c in clients:
        c.close()
    await asyncio.wait_for(asyncio.gather(*(c.closed for c in clients)), 30)
    n = len(clients)
    return {
        "connections": n,
        "rss_before_kb": before["rss"],
        "rss_after_kb": after["rss"],
        "kb_per_connection": round((after["rss"] - before["rss"]) / n, 2) if n else None,
        "peak_rss_kb": after["hwm"],
    }


def main() -> None:
    spec = json.loads(sys.argv[1])
    raise_open_files_limit(spec.get("open_files", 8192))
    result = asyncio.run({"saturate": saturate, "rate": rate, "idle": idle}[spec["mode"]](spec))
    result["server_memory_kb"] = memory_kb(spec["server_pid"])
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
