"""Built-in plant profiles: per sensor type, a good range and a critical range.

A device names one with `profile: lettuce`; each of its sensors whose type (and
unit) a profile covers gets that range as its alert rule, unless the sensor's
own `alert:` overrides it. A reading outside the good range is a `warning`,
outside the critical range a `critical` alert. docs/alerts.md lists every
figure with its source; change one here only together with that table.

A range applies only to a sensor whose unit matches the profile's (a water
level in cm cannot be judged by a range in percent): such sensors are skipped
and `smartanom check-config` says so.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

# Advice given with an alert, by sensor type and direction.
ADVICE: dict[str, tuple[str, str]] = {
    "ph": (
        "pH low: check the pH-up dosing, then recalibrate the pH probe if the reading looks wrong",
        "pH high: check the pH-down dosing and the reservoir (top-up water raises pH)",
    ),
    "ec": (
        "EC low: the nutrient solution is weak; add nutrient concentrate or check the dosing pump",
        "EC high: the solution is too strong; top up with fresh water and check for evaporation",
    ),
    "tds": (
        "TDS low: the nutrient solution is weak; add nutrient concentrate or check the dosing pump",
        "TDS high: the solution is too strong; top up with fresh water and check for evaporation",
    ),
    "water_temperature": (
        "Water cold: check the heater; roots take up little below 15 °C",
        "Water warm: shade or chill the reservoir and add aeration (warm water holds little oxygen)",
    ),
    "air_temperature": (
        "Air cold: check the heating and close vents at night",
        "Air hot: ventilate, shade, or run the cooling",
    ),
    "humidity": (
        "Humidity low: mist or reduce ventilation; plants lose water fast",
        "Humidity high: ventilate and run a dehumidifier; mould and tip burn risk",
    ),
    "water_level": (
        "Water level low: top up the reservoir and check for leaks",
        "Water level high: check the top-up valve; the reservoir may overflow",
    ),
}


@dataclass(frozen=True)
class Limits:
    """One sensor type's ranges in a profile. None means no bound on that side."""

    unit: str
    min: float | None = None  # good range: outside it is a warning
    max: float | None = None
    critical_min: float | None = None  # outside this it is critical
    critical_max: float | None = None
    # How far back inside the good range a value must be before an alert resolves.
    hysteresis: float = 0.0
    advice_low: str = ""
    advice_high: str = ""

    def merged(self, **overrides) -> "Limits":
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})


def _limits(sensor_type: str, unit: str, lo, hi, crit_lo, crit_hi, hysteresis: float) -> Limits:
    low, high = ADVICE.get(sensor_type, ("", ""))
    return Limits(unit, lo, hi, crit_lo, crit_hi, hysteresis, low, high)


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    sensors: dict[str, Limits]


# Hysteresis per sensor type: about the probe's noise, so jitter at an edge cannot resolve and
# re-fire an alert. Used for a sensor's own alert: range when no profile gives one.
HYSTERESIS: dict[str, float] = {
    "ph": 0.1,
    "ec": 0.1,
    "tds": 25.0,
    "temperature": 0.5,
    "water_temperature": 0.5,
    "air_temperature": 0.5,
    "humidity": 2.0,
    "water_level": 2.0,
    "turbidity": 1.0,
    "light": 100.0,
}


def _profile(name: str, description: str, **rows: tuple) -> Profile:
    units = {"ph": "ph", "ec": "mS/cm", "tds": "ppm", "water_temperature": "celsius",
             "air_temperature": "celsius", "humidity": "percent", "water_level": "percent"}
    return Profile(name, description, {t: _limits(t, units[t], *row, HYSTERESIS[t]) for t, row in rows.items()})


# (good min, good max, critical min, critical max) per sensor type; sources in docs/alerts.md.
# TDS is EC x 700 (the "700 scale" most TDS pens use), except the generic profile's,
# which are the original product's own figures.
BUILTIN: dict[str, Profile] = {
    p.name: p
    for p in (
        _profile(
            "generic", "Fallbacks of the original SmarTanom product, for any leafy crop",
            ph=(5.8, 6.2, 5.5, 6.5),
            tds=(800, 1500, 600, 1800),
            ec=(1.1, 2.1, 0.9, 2.6),
            water_temperature=(18, 24, 15, 28),
            air_temperature=(18, 26, 10, 35),
            humidity=(50, 70, 30, 90),
            water_level=(40, None, 0.5, None),
        ),
        _profile(
            "lettuce", "Lettuce (and most salad greens) in NFT or deep water culture",
            ph=(5.6, 6.2, 5.2, 6.8),
            ec=(0.8, 1.4, 0.6, 2.0),
            tds=(560, 980, 420, 1400),
            water_temperature=(18, 24, 15, 27),
            air_temperature=(16, 24, 7, 30),
            humidity=(50, 70, 30, 90),
            water_level=(40, None, 0.5, None),
        ),
        _profile(
            "basil", "Sweet basil and other culinary herbs",
            ph=(5.5, 6.5, 5.0, 7.0),
            ec=(1.0, 1.6, 0.7, 2.2),
            tds=(700, 1120, 490, 1540),
            water_temperature=(18, 25, 15, 28),
            air_temperature=(20, 27, 10, 32),
            humidity=(40, 65, 30, 85),
            water_level=(40, None, 0.5, None),
        ),
        _profile(
            "tomato", "Tomato (fruiting stage), in NFT, rockwool or Dutch buckets",
            ph=(5.5, 6.5, 5.0, 7.0),
            ec=(2.0, 3.5, 1.5, 5.0),
            tds=(1400, 2450, 1050, 3500),
            water_temperature=(18, 24, 15, 27),
            air_temperature=(18, 27, 10, 32),
            humidity=(60, 80, 40, 90),
            water_level=(40, None, 0.5, None),
        ),
        _profile(
            "strawberry", "Strawberry (day-neutral varieties) in gutters or towers",
            ph=(5.5, 6.2, 5.0, 6.8),
            ec=(1.0, 1.5, 0.7, 2.2),
            tds=(700, 1050, 490, 1540),
            water_temperature=(16, 22, 12, 26),
            air_temperature=(15, 26, 5, 30),
            humidity=(60, 75, 40, 90),
            water_level=(40, None, 0.5, None),
        ),
        _profile(
            "pechay", "Pechay (bok choy, Brassica rapa chinensis), incl. the Kratky/SNAP method",
            ph=(5.5, 6.5, 5.0, 7.0),
            ec=(1.5, 2.0, 1.0, 2.5),
            tds=(1050, 1400, 700, 1750),
            water_temperature=(18, 26, 15, 30),
            air_temperature=(18, 30, 10, 35),
            humidity=(50, 80, 30, 90),
            water_level=(40, None, 0.5, None),
        ),
    )
}
