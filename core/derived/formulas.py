"""The formulas of derived readings: TDS from EC, VPD from air and leaf, DLI from PPFD.

Pure functions; docs/calibration.md ("Derived sensors") names their sources.
"""

from __future__ import annotations

import math

# EC units a TDS sensor can be computed from, as multipliers to uS/cm.
EC_UNITS = {"mS/cm": 1000.0, "uS/cm": 1.0, "µS/cm": 1.0}


def tds_ppm(ec: float, factor: float, ec_unit: str = "mS/cm") -> float:
    """Total dissolved solids (ppm = mg/L) from conductivity: EC in uS/cm times the factor
    (0.5 for the NaCl scale, 0.64, 0.7 for the 442 scale)."""
    return ec * EC_UNITS[ec_unit] * factor


def saturation_vapour_pressure_kpa(temperature_c: float) -> float:
    """Tetens' formula, kPa."""
    return 0.61078 * math.exp(17.27 * temperature_c / (temperature_c + 237.3))


def vpd_kpa(air_c: float, humidity_percent: float, leaf_offset_c: float = 0.0) -> float:
    """Leaf vapour pressure deficit: saturation pressure at the leaf (air + offset,
    leaves under light run cooler, so the offset is usually negative) minus the
    air's actual vapour pressure."""
    actual = saturation_vapour_pressure_kpa(air_c) * humidity_percent / 100.0
    return saturation_vapour_pressure_kpa(air_c + leaf_offset_c) - actual


def dli_increment(ppfd_a: float, ppfd_b: float, seconds: float) -> float:
    """Moles of photons per m2 between two PPFD readings (umol/m2/s) `seconds` apart
    (trapezoid rule); a day's sum is the daily light integral in mol/m2/d."""
    return (ppfd_a + ppfd_b) / 2.0 * seconds / 1e6
