"""Turning raw Modbus registers into a reading: pure functions, no I/O.

A Modbus register holds 16 bits and is sent high byte first. Values wider than
16 bits span consecutive registers, and devices disagree on how: `word_order`
says whether the first register holds the most significant word ("big") or the
least ("little"); `byte_order` says whether each register's bytes are sent
high byte first ("big", the standard) or swapped ("little"). In datasheet
notation, with A the most significant byte of a 32-bit value:

    word_order  byte_order  on the wire
    big         big         A B C D   ("ABCD", big-endian, the default)
    little      big         C D A B   ("CDAB", word-swapped, common on probes)
    big         little      B A D C   ("BADC", byte-swapped)
    little      little      D C B A   ("DCBA", little-endian)

pymodbus' `convert_from_registers` handles word order but not byte order,
so the few lines of struct unpacking live here.
"""

from __future__ import annotations

import struct
from typing import Literal, Sequence

Order = Literal["big", "little"]

# data type -> (struct format, registers it spans)
DATA_TYPES: dict[str, tuple[str, int]] = {
    "int16": ("h", 1),
    "uint16": ("H", 1),
    "int32": ("i", 2),
    "uint32": ("I", 2),
    "float32": ("f", 2),
    "int64": ("q", 4),
    "uint64": ("Q", 4),
    "float64": ("d", 4),
}


def register_count(data_type: str) -> int:
    """How many 16-bit registers a value of `data_type` occupies."""
    return DATA_TYPES[data_type][1]


def decode(registers: Sequence[int], data_type: str, word_order: Order = "big", byte_order: Order = "big") -> int | float:
    """The number that `registers` (as read, first register first) encode.

    Raises ValueError when the register count does not match the data type or
    a register is not a 16-bit unsigned value.
    """
    fmt, count = DATA_TYPES[data_type]
    if len(registers) != count:
        raise ValueError(f"{data_type} needs {count} register(s), got {len(registers)}")
    if any(not 0 <= r <= 0xFFFF for r in registers):
        raise ValueError(f"registers must be 16-bit unsigned values, got {list(registers)}")
    words = list(registers) if word_order == "big" else list(reversed(registers))
    data = b"".join(w.to_bytes(2, "big" if byte_order == "big" else "little") for w in words)
    return struct.unpack(">" + fmt, data)[0]


def encode(value: int | float, data_type: str, word_order: Order = "big", byte_order: Order = "big") -> list[int]:
    """The registers a device would send for `value`: the inverse of decode (for tests and tools)."""
    fmt, _count = DATA_TYPES[data_type]
    data = struct.pack(">" + fmt, value)
    words = [int.from_bytes(data[i:i + 2], "big" if byte_order == "big" else "little") for i in range(0, len(data), 2)]
    return words if word_order == "big" else list(reversed(words))


def to_value(raw: int | float, scale: float = 1.0, offset: float = 0.0, precision: int | None = None) -> float:
    """raw * scale + offset, rounded to `precision` decimal places (None: not rounded)."""
    value = raw * scale + offset
    return float(round(value, precision)) if precision is not None else float(value)
