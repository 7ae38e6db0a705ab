"""A reservoir model for closed-loop tests and demos: pH, EC and level that answer doses.

Pure computation on the times it is given (no clock of its own). A dose goes
into an unmixed pool that reaches the bulk with a first-order mixing time, so a
sensor sees it only gradually, as in a real tank. The level falls with
evaporation and rises while the top-off valve is open; plants push pH up
slowly; each reading carries a little noise.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

# What each simulated pump or valve does; an output names one with `role:`.
ROLES = ("ph_down", "ph_up", "nutrient", "topoff", "none")


@dataclass
class TankSettings:
    volume_l: float = 100.0
    ph: float = 7.0
    ec: float = 1.2
    level_cm: float = 30.0
    pump_ml_per_s: float = 1.0          # the real flow of every dosing pump
    ph_per_ml: float = 0.02             # pH change per ml of pH-down/up in 100 L
    ec_per_ml: float = 0.004            # mS/cm per ml of nutrient in 100 L
    mixing_seconds: float = 60.0        # time constant of mixing
    ph_drift_per_hour: float = 0.01     # uptake by the plants pushes pH up
    evaporation_cm_per_hour: float = 0.05
    topoff_cm_per_s: float = 0.02
    noise: float = 0.01                 # reading noise (pH units; scaled for EC and level)


class Tank:
    def __init__(self, settings: TankSettings | None = None, seed: int | None = None, start: float = 0.0):
        self.s = settings or TankSettings()
        self.ph, self.ec, self.level = self.s.ph, self.s.ec, self.s.level_cm
        self._pending_ph = 0.0
        self._pending_ec = 0.0
        self.running: set[str] = set()
        self.dosed_ml: dict[str, float] = {role: 0.0 for role in ROLES}
        self.min_ph = self.max_ph = self.ph
        self._at = start
        self._rng = random.Random(seed)

    def set(self, role: str, on: bool, now: float) -> None:
        self.advance(now)
        (self.running.add if on else self.running.discard)(role)

    def advance(self, now: float) -> None:
        dt = now - self._at
        if dt <= 0:
            return
        self._at = now
        scale = 100.0 / self.s.volume_l
        ml = self.s.pump_ml_per_s * dt
        for role in self.running:
            self.dosed_ml[role] += ml if role != "topoff" else 0.0
        if "ph_down" in self.running:
            self._pending_ph -= self.s.ph_per_ml * ml * scale
        if "ph_up" in self.running:
            self._pending_ph += self.s.ph_per_ml * ml * scale
        if "nutrient" in self.running:
            self._pending_ec += self.s.ec_per_ml * ml * scale
        mixed = 1.0 - math.exp(-dt / self.s.mixing_seconds) if self.s.mixing_seconds > 0 else 1.0
        self.ph += self._pending_ph * mixed + self.s.ph_drift_per_hour * dt / 3600
        self.ec += self._pending_ec * mixed
        self._pending_ph *= 1.0 - mixed
        self._pending_ec *= 1.0 - mixed
        before = self.level
        self.level -= self.s.evaporation_cm_per_hour * dt / 3600
        if "topoff" in self.running:
            self.level += self.s.topoff_cm_per_s * dt
        if self.level > 0 and before > 0:
            self.ec *= before / self.level  # evaporation concentrates, fresh water dilutes
        self.min_ph, self.max_ph = min(self.min_ph, self.ph), max(self.max_ph, self.ph)

    def read(self, sensor_type: str, now: float) -> float | None:
        """A noisy reading of the tank, or None for a type the tank does not model."""
        self.advance(now)
        noise = self._rng.gauss(0, self.s.noise)
        if sensor_type == "ph":
            return round(self.ph + noise, 2)
        if sensor_type == "ec":
            return round(self.ec + noise / 2, 3)
        if sensor_type == "water_level":
            return round(self.level + noise * 5, 1)
        return None
