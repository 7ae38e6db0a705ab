"""Readings a stop could not write, kept for the next start (core/storage.py).

When the hub stops while its database cannot be written (a full disk), the
readings still in memory would be lost. They go to a recovery file instead,
and the next start imports them. The file's space is reserved when storage
opens (posix_fallocate, room for `max_pending` readings), so that saving at
stop overwrites blocks the file already owns: a disk that filled up meanwhile
cannot refuse it. The format is fixed-size binary records, so a file cut short
by a crash is still read up to its last whole record.
"""

from __future__ import annotations

import logging
import math
import os
import struct
from pathlib import Path

log = logging.getLogger("smartanom.storage")

_HEADER = struct.Struct("<8sQ")  # magic, number of records that follow
_MAGIC = b"SMTRCV02"
# sensor_id, ts, value, raw (NaN = none), calibration_id (-1 = none): a storage queue entry.
_RECORD = struct.Struct("<qdddq")


class RecoveryFile:
    def __init__(self, path: str | Path, capacity: int):
        self.path = Path(path)
        self.capacity = capacity
        self.reserved = False

    @property
    def size(self) -> int:
        return _HEADER.size + self.capacity * _RECORD.size

    def reserve(self) -> None:
        """Create the file (empty) with room for `capacity` readings. Raises OSError."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            if os.fstat(fd).st_size < _HEADER.size:
                os.pwrite(fd, _HEADER.pack(_MAGIC, 0), 0)
            os.posix_fallocate(fd, 0, self.size)
            os.fsync(fd)
        finally:
            os.close(fd)
        self.reserved = True

    def load(self) -> list[tuple]:
        """The readings a previous stop saved (none if there is no file)."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return []
        if len(data) < _HEADER.size:
            return []
        magic, count = _HEADER.unpack_from(data)
        if magic != _MAGIC:
            log.error("%s is not a SmarTanom recovery file; left alone", os.fspath(self.path))
            return []
        whole = min(count, (len(data) - _HEADER.size) // _RECORD.size)
        return [_unpack(data, _HEADER.size + i * _RECORD.size) for i in range(whole)]

    def save(self, readings: list[tuple]) -> None:
        """Write `readings` (storage queue entries) in place of whatever the file held, durably. Raises OSError."""
        records = b"".join(_pack(*r) for r in readings)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            os.pwrite(fd, records, _HEADER.size)
            os.fsync(fd)
            # The count last: a crash before it leaves the previous, consistent contents.
            os.pwrite(fd, _HEADER.pack(_MAGIC, len(readings)), 0)
            os.fsync(fd)
        finally:
            os.close(fd)

    def clear(self) -> None:
        """Mark the file empty once its readings are in the database (space stays reserved)."""
        self.save([])


def _pack(sensor_id: int, ts: float, value: float, raw: float | None, calibration_id: int | None) -> bytes:
    return _RECORD.pack(sensor_id, ts, value, math.nan if raw is None else raw, -1 if calibration_id is None else calibration_id)


def _unpack(data: bytes, offset: int) -> tuple:
    sensor_id, ts, value, raw, calibration_id = _RECORD.unpack_from(data, offset)
    return sensor_id, ts, value, None if math.isnan(raw) else raw, None if calibration_id < 0 else calibration_id
