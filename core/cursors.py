"""The `cursor` of a readings page's `next` link: opaque to clients, checked when it comes back.

A cursor says which kind of page it continues (raw readings, or buckets of one
width), for which sensor, and where: `r:SENSOR:TS:ID` or `bWIDTH:SENSOR:START`,
base64url-encoded so that no client builds or edits one. A cursor of another
kind or sensor, or with numbers SQLite cannot take, is a 400, never a 500.
"""

from __future__ import annotations

import base64
import binascii
import math

_MAX_ROW_ID = 2**63 - 1  # SQLite's INTEGER
_MAX_TS = 1e11  # year 5138: far beyond any stored reading, far within a double's exact range


def encode(sensor_id: int, bucket: int | None, cursor: tuple[float, int] | float) -> str:
    if bucket:
        body = f"b{bucket}:{sensor_id}:{float(cursor)!r}"
    else:
        ts, row_id = cursor
        body = f"r:{sensor_id}:{ts!r}:{row_id}"
    return base64.urlsafe_b64encode(body.encode()).decode().rstrip("=")


def decode(text: str, sensor_id: int, bucket: int | None) -> tuple[float, int] | float:
    """The history.Query cursor in `text`. Raises ValueError saying what is wrong."""
    try:
        body = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode("ascii")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise ValueError("not a cursor from a 'next' link") from None
    parts = body.split(":")
    kind = f"b{bucket}" if bucket else "r"
    if not parts or parts[0] != kind:
        raise ValueError("this cursor belongs to a query with another 'bucket'")
    if len(parts) != (4 if kind == "r" else 3):
        raise ValueError("not a cursor from a 'next' link")
    if parts[1] != str(sensor_id):
        raise ValueError("this cursor belongs to another sensor's readings")
    ts = _number(parts[2])
    if kind != "r":
        return ts
    if not parts[3].isdigit() or int(parts[3]) > _MAX_ROW_ID:
        raise ValueError("not a cursor from a 'next' link")
    return ts, int(parts[3])


def _number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError("not a cursor from a 'next' link") from None
    if not (math.isfinite(value) and 0 <= value <= _MAX_TS) or "_" in text:
        raise ValueError("not a cursor from a 'next' link")
    return value
