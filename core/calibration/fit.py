"""Calibration curves and probe health: pure arithmetic, no I/O.

A calibration is a set of points (raw reading, true reference value). One point
shifts (pH: offset) or scales (EC: gain, since conductivity is proportional to
the cell's signal) the raw reading; two points give a straight line; three or
more give a piecewise-linear curve through every point, each raw value using
the segment it falls in (beyond the ends, the nearest end segment carries on),
as pH meters do with an acid and a base slope.

pH probe health is reported the way bench meters report it, in millivolts:
the slope as a percentage of the Nernstian slope at the buffers' temperature,
and the offset as the probe's potential at pH 7. docs/calibration.md names
the sources of the formulas and of the bands.
"""

from __future__ import annotations

from dataclasses import dataclass

# Gas constant, Faraday constant, ln(10): the Nernstian slope is
# ln(10)*R*T/F volts per pH unit (59.16 mV at 25 C).
_R = 8.314462618
_F = 96485.33212
_LN10 = 2.302585092994046
KELVIN = 273.15

# Bands for a pH probe's slope (% of Nernst) and offset (mV at pH 7).
# Corning 440 manual, 3.4.2: 95-105 % fine, 90-95 % needs cleaning and fresh fill
# solution, 85-90 % full maintenance now, below 85 % will not calibrate. The
# offset: within +/-30 mV is healthy; meters refuse beyond about +/-60 mV.
SLOPE_GOOD = (95.0, 105.0)
SLOPE_ACCEPTED = (85.0, 105.0)
OFFSET_GOOD_MV = 30.0
OFFSET_ACCEPTED_MV = 60.0


@dataclass(frozen=True)
class Point:
    raw: float        # what the probe read, settled, in its raw unit
    reference: float  # the standard's true value (buffer pH, solution EC)


class CalibrationError(ValueError):
    """The points cannot make a calibration (too few, repeated, or flat)."""


@dataclass(frozen=True)
class Curve:
    """raw -> calibrated value, through `points` sorted by raw value."""

    points: tuple[Point, ...]
    slope: float = 1.0   # the one-segment case, also shown to people
    offset: float = 0.0

    def apply(self, raw: float) -> float:
        pts = self.points
        if len(pts) < 3:
            return self.slope * raw + self.offset
        # Segment whose raw span holds `raw`; outside the ends, the end segments.
        i = 0
        while i < len(pts) - 2 and raw > pts[i + 1].raw:
            i += 1
        a, b = pts[i], pts[i + 1]
        return a.reference + (raw - a.raw) * (b.reference - a.reference) / (b.raw - a.raw)


def fit(points: list[Point], one_point: str = "offset") -> Curve:
    """The curve through `points`. With one point, `one_point` says whether it
    shifts ("offset", pH and most sensors) or scales ("gain", EC) the reading."""
    if not points:
        raise CalibrationError("a calibration needs at least one point")
    pts = tuple(sorted(points, key=lambda p: p.raw))
    if len({p.reference for p in pts}) < len(pts):
        raise CalibrationError("two points use the same standard; use a different standard for each point")
    if len(pts) == 1:
        p = pts[0]
        if one_point == "gain":
            if p.raw == 0:
                raise CalibrationError("the probe read 0 in the standard; is it in the solution and connected?")
            return Curve(pts, slope=p.reference / p.raw, offset=0.0)
        return Curve(pts, slope=1.0, offset=p.reference - p.raw)
    for a, b in zip(pts, pts[1:]):
        if b.raw == a.raw:
            raise CalibrationError(f"the probe read the same value ({a.raw:g}) in two different standards; it is not responding")
    if len(pts) == 2:
        a, b = pts
        slope = (b.reference - a.reference) / (b.raw - a.raw)
        return Curve(pts, slope=slope, offset=a.reference - slope * a.raw)
    # Shown slope/offset: the least-squares line, for people; apply() uses the segments.
    n = len(pts)
    mx = sum(p.raw for p in pts) / n
    my = sum(p.reference for p in pts) / n
    sxx = sum((p.raw - mx) ** 2 for p in pts)
    slope = sum((p.raw - mx) * (p.reference - my) for p in pts) / sxx
    return Curve(pts, slope=slope, offset=my - slope * mx)


def nernst_slope_mv(temperature_c: float = 25.0) -> float:
    """The ideal pH electrode's response in mV per pH unit at `temperature_c`."""
    return _LN10 * _R * (temperature_c + KELVIN) / _F * 1000.0


def ph_to_mv(raw_ph: float) -> float:
    """The potential a board reporting `raw_ph` measured, assuming it converted
    with the ideal 25 C slope and 0 mV at pH 7 (what uncalibrated boards do)."""
    return (7.0 - raw_ph) * nernst_slope_mv(25.0)


@dataclass(frozen=True)
class PhHealth:
    slopes: tuple[float, ...]  # % of Nernst, per segment between adjacent buffers (acid first)
    offset_mv: float           # the probe's potential at pH 7
    verdict: str               # "good", "clean", "maintain" or "replace"
    message: str

    @property
    def accepted(self) -> bool:
        return self.verdict != "replace"

    def as_dict(self) -> dict:
        return {
            "slope_percent": [round(s, 1) for s in self.slopes],
            "offset_mv": round(self.offset_mv, 1),
            "verdict": self.verdict,
            "message": self.message,
        }


def ph_health(points_mv: list[tuple[float, float]], temperature_c: float = 25.0) -> PhHealth:
    """Slope and offset of a pH probe from (mV, buffer pH) points, two or more.

    The slope of each segment is |delta mV / delta pH| over the Nernstian slope
    at `temperature_c`; the offset is the potential at pH 7, read off the line
    through the two buffers nearest pH 7.
    """
    pts = sorted(points_mv, key=lambda p: p[1])
    if len(pts) < 2:
        raise CalibrationError("slope needs two buffers or more")
    ideal = nernst_slope_mv(temperature_c)
    slopes = tuple(abs((b[0] - a[0]) / (b[1] - a[1])) / ideal * 100.0 for a, b in zip(pts, pts[1:]))
    a, b = min(zip(pts, pts[1:]), key=lambda seg: abs((seg[0][1] + seg[1][1]) / 2 - 7.0))
    offset = a[0] + (7.0 - a[1]) * (b[0] - a[0]) / (b[1] - a[1])
    # Judged as a meter shows them, to 0.1: 94.99999 % is 95.0 %.
    verdicts = [_verdict(round(s, 1), round(offset, 1)) for s in slopes]
    return PhHealth(slopes, offset, *max(verdicts, key=lambda v: _SEVERITY.index(v[0])))


_SEVERITY = ("good", "clean", "maintain", "replace")


def _verdict(slope: float, offset: float) -> tuple[str, str]:
    if not SLOPE_ACCEPTED[0] <= slope <= SLOPE_ACCEPTED[1] or abs(offset) > OFFSET_ACCEPTED_MV:
        return "replace", (
            f"slope {slope:.1f} % of Nernst (accepted {SLOPE_ACCEPTED[0]:g}-{SLOPE_ACCEPTED[1]:g} %), offset {offset:+.1f} mV "
            f"(accepted +/-{OFFSET_ACCEPTED_MV:g} mV): clean or replace the probe, check the buffers are fresh and the right ones; "
            "the calibration was NOT applied"
        )
    if slope < 90.0:
        return "maintain", f"slope {slope:.1f} %: do full probe maintenance now (clean, fresh fill solution); calibration applied"
    if slope < SLOPE_GOOD[0] or abs(offset) > OFFSET_GOOD_MV:
        return "clean", f"slope {slope:.1f} %, offset {offset:+.1f} mV: the probe needs cleaning soon (coating on the bulb or junction); calibration applied"
    return "good", f"slope {slope:.1f} %, offset {offset:+.1f} mV: the probe is healthy; calibration applied"
