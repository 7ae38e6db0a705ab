"""Computing derived sensors as their inputs' readings arrive.

A derived sensor (TDS from EC, VPD from air temperature and humidity, DLI from
PPFD) is defined under `devices:` like any sensor and named under `derived:`.
When one of its inputs publishes, it is computed from every input's latest
value, provided each arrived within `max_age` (default: the input device's
offline_after); otherwise it is stale: nothing is published (it is never
computed from old data), which the log says once, and GET /api/derived shows.
Its readings go on the bus like any other: stored, streamed, charted, on MQTT.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from typing import Callable

from smartanom.calibration.config import DerivedConfig
from smartanom.calibration.latest import LatestReadings
from smartanom.derived import formulas
from smartanom.events import SensorReading
from smartanom.registry import Registry, Sensor
from smartanom.validity import implausible

log = logging.getLogger("smartanom.derived")

NOT_YET = "no reading from its inputs yet"
STALE_CHECK = 1.0  # seconds between looks for inputs gone quiet

Publish = Callable[[Sensor, float, float, str], None]


class _Derived:
    def __init__(self, config: DerivedConfig, sensor: Sensor, inputs: dict[str, Sensor]):
        self.config = config
        self.sensor = sensor
        self.inputs = inputs
        self.stale_reason: str | None = NOT_YET
        self.scheduled = False
        self.trigger_ts = 0.0
        # DLI: the day being summed (local date), its total, and the last PPFD reading.
        self.day: str | None = None
        self.total = 0.0
        self.last: tuple[float, float] | None = None  # (timestamp, ppfd)


class DerivedSensors:
    def __init__(self, registry: Registry, configs: list[DerivedConfig], latest: LatestReadings, publish: Publish):
        self.registry = registry
        self.latest = latest
        self.publish = publish
        self.entries = [
            _Derived(c, registry.sensors[c.sensor], {k: registry.sensors[i] for k, i in c.inputs().items()}) for c in configs
        ]
        self._by_input: dict[int, list[_Derived]] = {}
        self._checked = float("-inf")  # when check_stale last ran (the freshness clock)
        for entry in self.entries:
            for source in entry.inputs.values():
                self._by_input.setdefault(source.id, []).append(entry)

    def attach(self, bus) -> Callable[[], None]:
        return bus.subscribe(SensorReading, self.on_reading)

    def on_reading(self, reading: SensorReading) -> None:
        now = self.latest.clock()  # arrival time: a reading's own timestamp may come from a client
        if now - self._checked >= STALE_CHECK:
            # A derived sensor whose inputs all went quiet gets no reading to find it
            # stale; any other sensor's reading is the occasion to look (once a second).
            self._checked = now
            self.check_stale()
        for entry in self._by_input.get(reading.sensor.id, ()):
            if entry.config.kind == "dli":
                self._integrate(entry, reading)
            elif not entry.scheduled:
                # Inputs that arrive together (one device's sample) make one reading:
                # compute once the loop has delivered them all.
                entry.scheduled = True
                entry.trigger_ts = reading.timestamp
                asyncio.get_running_loop().call_soon(self._compute, entry)
            else:
                entry.trigger_ts = max(entry.trigger_ts, reading.timestamp)

    def _fresh_inputs(self, entry: _Derived) -> dict[str, float] | None:
        values = {}
        for key, source in entry.inputs.items():
            max_age = entry.config.max_age or source.device.offline_after
            value = self.latest.fresh(source.id, max_age)
            if value is None:
                age = self.latest.age(source.id)
                when = "has sent nothing yet" if age is None else f"last sent {age:.0f} s ago (max_age {max_age:g} s)"
                self._stale(entry, f"input {key} (sensor {source.id}) {when}")
                return None
            values[key] = value
        return values

    def _compute(self, entry: _Derived) -> None:
        entry.scheduled = False
        values = self._fresh_inputs(entry)
        if values is None:
            return
        c = entry.config
        if c.kind == "tds":
            value = formulas.tds_ppm(values["ec"], c.factor, entry.inputs["ec"].unit)
        else:
            value = formulas.vpd_kpa(values["air_temperature"], values["humidity"], c.leaf_offset)
        self._emit(entry, value, entry.trigger_ts)

    def _integrate(self, entry: _Derived, reading: SensorReading) -> None:
        ppfd = reading.value
        day = datetime.fromtimestamp(reading.timestamp).date().isoformat()  # the grower's local day
        if day != entry.day:
            entry.day, entry.total, entry.last = day, 0.0, None
        max_age = entry.config.max_age or reading.sensor.device.offline_after
        if entry.last is not None:
            gap = reading.timestamp - entry.last[0]
            if 0 < gap <= max_age:
                entry.total += formulas.dli_increment(entry.last[1], ppfd, gap)
            elif gap > max_age:
                # Light during a gap is unknown: not counted, and said so.
                log.warning("Sensor %d (DLI): no PPFD for %.0f s; that time is not counted in today's total", entry.sensor.id, gap)
        entry.last = (reading.timestamp, ppfd)
        self._emit(entry, entry.total, reading.timestamp)

    def _emit(self, entry: _Derived, value: float, timestamp: float) -> None:
        problem = implausible(entry.sensor, value)
        if problem:
            log.warning("Sensor %d (%s): computed %s", entry.sensor.id, entry.config.kind, problem)
            return
        if entry.stale_reason not in (None, NOT_YET):
            log.info("Sensor %d (%s): inputs fresh again; computing resumes", entry.sensor.id, entry.config.kind)
        entry.stale_reason = None
        self.publish(entry.sensor, value, timestamp, "derived")

    def _stale(self, entry: _Derived, reason: str) -> None:
        if entry.stale_reason is None:
            log.warning("Sensor %d (%s) is stale and not computed: %s", entry.sensor.id, entry.config.kind, reason)
        entry.stale_reason = reason

    def check_stale(self) -> None:
        """Mark entries whose inputs went quiet (nothing arrives to trigger a computation then)."""
        for entry in self.entries:
            if entry.stale_reason is None:
                self._fresh_inputs(entry)

    def status(self) -> list[dict]:
        self.check_stale()
        return [
            {
                "sensor_id": e.sensor.id,
                "kind": e.config.kind,
                "inputs": {k: s.id for k, s in e.inputs.items()},
                "stale": e.stale_reason is not None,
                "reason": e.stale_reason,
            }
            for e in self.entries
        ]
