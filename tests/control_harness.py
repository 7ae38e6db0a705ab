"""A control loop on simulated time around the simulated tank, for closed-loop tests.

Everything is real (bus, outputs, journal in SQLite, control engine, tank
model) except time, which is a SimulatedClock that the test advances.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from zoneinfo import ZoneInfo

from smartanom.bus import EventBus
from smartanom.config import DeviceConfig, SensorConfig
from smartanom.control.clock import SimulatedClock
from smartanom.control.config import ControlConfig
from smartanom.control.engine import Control
from smartanom.control.journal import Journal
from smartanom.control.outputs import Output, OutputBank, OutputChanged, OutputContext
from smartanom.events import SensorReading
from smartanom.registry import Registry
from smartanom.builtin.simulated.outputs import SimulatedOutput, SimulatedOutputOptions
from smartanom.builtin.simulated.tank import Tank, TankSettings

PH, LEVEL, EC = 1, 2, 3


async def until(condition, timeout: float = 10.0) -> None:
    """Wait (in real time, for tests of hardware outputs) until `condition()` holds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)
START = datetime(2026, 3, 28, 0, 0, tzinfo=ZoneInfo("Europe/Amsterdam")).timestamp()


def registry() -> Registry:
    return Registry.from_config([DeviceConfig(id=1, name="Tank", sensors=[
        SensorConfig(id=PH, type="ph", min=0.0, max=14.0), SensorConfig(id=LEVEL, type="water_level"),
        SensorConfig(id=EC, type="ec"),
    ])])


class Rig:
    def __init__(self, tmp_path, control: dict, outputs: list[dict], *, tank: TankSettings | None = None,
                 start: float = START, db: str = "control.db", read_every: float = 10.0):
        self.clock = SimulatedClock(start)
        self.registry = registry()
        self.bus = EventBus()
        self.journal = Journal(tmp_path / db)
        self.journal.open()
        self.shared: dict = {}
        self.tank = Tank(tank or TankSettings(), seed=7, start=start)
        self.shared[("simulated", "tank", 1)] = self.tank
        bank = []
        for raw in outputs:
            options = SimulatedOutputOptions.model_validate({"type": "simulated", "device": 1, **raw})
            bank.append(Output(options, SimulatedOutput(options, OutputContext(options, self.shared), now=self.clock.now)))
        config = ControlConfig.model_validate(control)
        self.outputs = OutputBank(bank, self.bus, self.journal, self.clock.now, dry_run=config.dry_run)
        self.control = Control(config, self.outputs, self.bus, self.journal, self.clock)
        self.events: list[OutputChanged] = []
        self.bus.subscribe(OutputChanged, self.events.append)
        self.read_every = read_every
        # What the sensors say: None = the tank; a number = stuck there; "silent" = no readings.
        self.ph_sensor: object = None
        self.level_sensor: float | None = None  # a number = the level probe stuck there
        self.ec_sensor: float | None = None  # a number = the EC probe stuck there
        self.ph_trace: list[tuple[float, float]] = []
        self._feeder: asyncio.Task | None = None

    async def start(self) -> None:
        await self.control.start()
        self._feeder = asyncio.get_running_loop().create_task(self._feed())

    async def stop(self) -> None:
        self._feeder.cancel()
        await asyncio.gather(self._feeder, return_exceptions=True)
        await self.control.stop()  # the journal stays open for the test to read

    async def run_for(self, seconds: float) -> None:
        await self.clock.advance(seconds)

    async def _feed(self) -> None:
        while True:
            now = self.clock.now()
            true_ph = self.tank.read("ph", now)
            self.ph_trace.append((now, self.tank.ph))
            if self.ph_sensor != "silent":
                value = true_ph if self.ph_sensor is None else self.ph_sensor
                self.bus.publish(SensorReading(self.registry.sensor(PH), value, now))
                level = self.tank.read("water_level", now) if self.level_sensor is None else self.level_sensor
                self.bus.publish(SensorReading(self.registry.sensor(LEVEL), level, now))
                ec = self.tank.read("ec", now) if self.ec_sensor is None else self.ec_sensor
                self.bus.publish(SensorReading(self.registry.sensor(EC), ec, now))
            await self.clock.sleep(self.read_every)
