"""Calibrations on disk: the `calibrations` table (schema migration 3).

Every finished calibration is a new row (never an update), so the history of a
sensor's calibrations is kept and each stored reading's `calibration_id` keeps
pointing at the curve it was made under. A sensor's active calibration is its
newest row. Calls block: the hub runs them in an executor, off the loop.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from smartanom.calibration.fit import Curve, Point, fit
from smartanom.protocol import format_timestamp
from smartanom.storage import connect

ONE_POINT = {"ec": "gain"}  # kind -> how a one-point calibration acts (default: offset)


@dataclass(frozen=True)
class Calibration:
    id: int
    sensor_id: int
    created: float  # UTC epoch seconds
    kind: str
    curve: Curve
    report: dict

    def as_dict(self) -> dict:
        return {
            "id": self.id,
            "sensor_id": self.sensor_id,
            "created": format_timestamp(self.created),
            "kind": self.kind,
            "points": [{"raw": p.raw, "reference": p.reference} for p in self.curve.points],
            "slope": self.curve.slope,
            "offset": self.curve.offset,
            "report": self.report,
        }


def curve_for(kind: str, points: list[Point]) -> Curve:
    return fit(points, ONE_POINT.get(kind, "offset"))


class CalibrationStore:
    def __init__(self, path: str | Path):
        self.path = path

    def _connect(self) -> sqlite3.Connection:
        # Storage.open ran the migrations already; this only reads and appends.
        return connect(self.path)

    def save(self, sensor_id: int, created: float, kind: str, curve: Curve, report: dict) -> Calibration:
        conn = self._connect()
        try:
            with conn:
                cursor = conn.execute(
                    "INSERT INTO calibrations (sensor_id, created, kind, points, slope, offset, report) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (sensor_id, created, kind, json.dumps([[p.raw, p.reference] for p in curve.points]), curve.slope, curve.offset, json.dumps(report)),
                )
        finally:
            conn.close()
        return Calibration(cursor.lastrowid, sensor_id, created, kind, curve, report)

    def active(self) -> dict[int, Calibration]:
        """Each sensor's newest calibration."""
        conn = self._connect()
        try:
            rows = conn.execute(
                "SELECT id, sensor_id, created, kind, points, report FROM calibrations "
                "WHERE id IN (SELECT max(id) FROM calibrations GROUP BY sensor_id)"
            ).fetchall()
        finally:
            conn.close()
        return {row[1]: _calibration(row) for row in rows}

    def history(self, sensor_id: int, limit: int = 50) -> list[Calibration]:
        conn = self._connect()
        try:
            rows = conn.execute(
                "SELECT id, sensor_id, created, kind, points, report FROM calibrations WHERE sensor_id = ? ORDER BY id DESC LIMIT ?",
                (sensor_id, limit),
            ).fetchall()
        finally:
            conn.close()
        return [_calibration(row) for row in rows]


def _calibration(row) -> Calibration:
    cal_id, sensor_id, created, kind, points, report = row
    curve = curve_for(kind, [Point(raw, ref) for raw, ref in json.loads(points)])
    return Calibration(cal_id, sensor_id, created, kind, curve, json.loads(report))
