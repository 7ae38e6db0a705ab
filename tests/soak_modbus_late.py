"""By hand, not collected by pytest: the shipped modbus example against a probe that answers late.

    .venv/bin/python tests/soak_modbus_late.py MINUTES LATE_EVERY

Runs a hub with config/modbus-probe.yaml (timeout 0.5 s, retries 2) against
tests/modbus_misbehaving.LateRtuProbe on a pty pair. Every LATE_EVERY-th
request is answered 600 ms after it arrives (20 % after the timeout), the
others after 120 ms; LATE_EVERY 1 makes every answer late. Prints how many
readings were published and how many of them were wrong (must be 0), with
the plugin's counters. docs/modbus.md quotes the figures.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import textwrap
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from modbus_misbehaving import LateRtuProbe  # noqa: E402
from smartanom.config import load_config  # noqa: E402
from smartanom.events import SensorReading  # noqa: E402
from smartanom.hub import Hub  # noqa: E402
from smartanom.testing import make_plugin_host  # noqa: E402
from test_modbus_runner import device_registers  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
EXPECTED = {1: 6.5, 2: 23.5, 3: 1.413}


async def main(minutes: float, late_every: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        probe = await LateRtuProbe({
            1: {"holding": {0: 650, 1: 235}},
            2: {"input": dict(enumerate(device_registers(1413.0, "float32", "little", "big")))},
        }, tmp, delay=lambda n: 0.6 if n % late_every == 0 else 0.12).start()
        example = (ROOT / "config/modbus-probe.yaml").read_text()
        example = example.replace("/dev/ttyUSB0", probe.client_port).replace("data/smartanom.db", f"{tmp}/hub.db")
        path = Path(tmp) / "hub.yaml"
        path.write_text(textwrap.dedent(example))
        host = make_plugin_host()
        config = load_config(path, host.collect_platforms())
        config.server.port = 0
        hub = Hub(config, host)
        readings: list[SensorReading] = []
        hub.bus.subscribe(SensorReading, readings.append)
        await hub.start()
        await asyncio.sleep(minutes * 60)
        stats = hub.instances["tank-probes"].stats
        await hub.stop()
        await probe.stop()
    wrong = [(r.sensor.id, r.value) for r in readings if EXPECTED[r.sensor.id] != r.value]
    print(f"{minutes:g} min, every {late_every}. answer 600 ms late (timeout 500 ms): {probe.requests} requests, "
          f"{len(readings)} readings published, {len(wrong)} wrong {wrong[:5]}; plugin stats {dict(stats)}")


if __name__ == "__main__":
    asyncio.run(main(float(sys.argv[1]), int(sys.argv[2])))
