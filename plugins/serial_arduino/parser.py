"""The serial line protocol: bytes from an Arduino -> {key: value}.

Pure computation, no I/O, so every rule is tested without a port. The runner
feeds what the port delivers to a `LineSplitter`, hands each line to
`parse_line`, then maps the keys to sensors. docs/serial-arduino.md describes
the protocol for sketch authors; keep the two in step.

One line per sample, `\\n` or `\\r\\n` terminated, in any of three forms:

    ph=6.82,ec=1.41 water_temperature=21.5     key=value pairs, commas or spaces between
    pH          : 6.80                           one `key: value` per line (value may carry a unit)
    {"ph": 6.8, "tds": 702}                      one JSON object

Keys compare case-insensitively after trimming. A line may end in `*HH`, the
XOR of all bytes before the `*` in two hex digits (NMEA style); it is then
checked. Blank lines and lines starting with `#` (banners, comments) are ignored.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field

# What the runner counts and logs, by kind of problem.
INVALID_UTF8 = "invalid UTF-8"
TOO_LONG = "line too long"
BAD_CHECKSUM = "bad checksum"
MISSING_CHECKSUM = "missing checksum"
NOT_A_READING = "not a reading"
BAD_VALUE = "unparsable value"
UNKNOWN_KEY = "unknown key"

_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
# A unit after a `key: value` value, as debug prints often add one: "21.5 C", "702 ppm", "45 %".
_UNIT = re.compile(r"[^\d\s=:,{}]{1,12}(?:/[^\d\s=:,{}]{1,12})?")
_CHECKSUM = re.compile(rb"^(.*)\*([0-9A-Fa-f]{2})$", re.DOTALL)
_SPACES = re.compile(r"\s+")
_EQUALS = re.compile(r"\s*=\s*")
_SEPARATORS = re.compile(r"[,\s]+")


class LineError(ValueError):
    """A line that yields nothing: `kind` is one of the problem kinds above."""

    def __init__(self, kind: str, detail: str = ""):
        self.kind = kind
        self.detail = detail
        super().__init__(f"{kind}: {detail}" if detail else kind)


@dataclass
class ParsedLine:
    """The numbers a line carried, and the pairs in it that were not numbers."""

    values: dict[str, float] = field(default_factory=dict)
    bad_values: dict[str, str] = field(default_factory=dict)


def normalize_key(key: str) -> str:
    """How keys compare: trimmed, lower case, inner runs of spaces made one."""
    return _SPACES.sub(" ", key.strip()).lower()


def checksum(payload: bytes) -> int:
    """XOR of the bytes, as a sketch computes it while printing."""
    result = 0
    for byte in payload:
        result ^= byte
    return result


def parse_line(raw: bytes, require_checksum: bool = False) -> ParsedLine | None:
    """One line without its terminator -> ParsedLine, or None for a blank or `#` line.

    Raises LineError when the line as a whole is unusable. A line with some good
    and some bad pairs gives the good ones and lists the bad in `bad_values`.
    """
    raw = raw.rstrip(b"\r")
    match = _CHECKSUM.match(raw.rstrip())
    if match:
        raw, expected = match.group(1), int(match.group(2), 16)
        actual = checksum(raw)
        if actual != expected:
            raise LineError(BAD_CHECKSUM, f"line says {expected:02X}, bytes give {actual:02X}")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise LineError(INVALID_UTF8, str(exc)) from None
    text = text.strip()
    if not text or text.startswith("#"):
        return None
    if require_checksum and not match:
        raise LineError(MISSING_CHECKSUM, "checksum: required is set and the line has no *HH")
    if text.startswith("{"):
        return _parse_json(text)
    if "=" in text:
        return _parse_pairs(text)
    if ":" in text:
        return _parse_colon(text)
    raise LineError(NOT_A_READING, "no key=value, key: value or JSON object")


def _parse_json(text: str) -> ParsedLine:
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise LineError(NOT_A_READING, f"invalid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise LineError(NOT_A_READING, "JSON line is not an object")
    parsed = ParsedLine()
    for key, value in data.items():
        key = normalize_key(key)
        number = float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None
        if number is None or not math.isfinite(number):
            parsed.bad_values[key] = json.dumps(value)[:40]
        else:
            parsed.values[key] = number
    return parsed


def _parse_pairs(text: str) -> ParsedLine:
    parsed = ParsedLine()
    for token in _SEPARATORS.split(_EQUALS.sub("=", text)):
        if not token:
            continue
        key, sep, value = token.partition("=")
        if not sep or not key or "=" in value:
            raise LineError(NOT_A_READING, f"{token[:40]!r} is not key=value")
        _put(parsed, normalize_key(key), value)
    return parsed


def _parse_colon(text: str) -> ParsedLine:
    key, _, rest = text.partition(":")
    key = normalize_key(key)
    if not key:
        raise LineError(NOT_A_READING, "nothing before ':'")
    value, _, unit = rest.strip().partition(" ")
    parsed = ParsedLine()
    if unit.strip() and not _UNIT.fullmatch(unit.strip()):
        parsed.bad_values[key] = rest.strip()[:40]
        return parsed
    _put(parsed, key, value)
    return parsed


def _put(parsed: ParsedLine, key: str, value: str) -> None:
    number = float(value) if _NUMBER.fullmatch(value) else None
    if number is None or not math.isfinite(number):
        parsed.bad_values[key] = value[:40]
    else:
        parsed.values[key] = number


class LineSplitter:
    """Cuts the byte stream into lines, dropping the first one and overlong ones.

    The first line after opening is dropped because it is usually the tail of
    a line the Arduino was printing before we looked. A line longer than
    `max_length` (an Arduino printing binary, a missing newline) is given as
    a `TooLong` with its head, and the rest of it up to the next newline is
    skipped, so memory stays bounded whatever arrives.
    """

    def __init__(self, max_length: int, skip_first: bool = True):
        self.max_length = max_length
        self._buffer = bytearray()
        self._skipping_first = skip_first
        self._overflowing = False

    def feed(self, data: bytes) -> list[bytes | "TooLong"]:
        out: list[bytes | TooLong] = []
        start = 0
        while True:
            end = data.find(b"\n", start)
            if end < 0:
                self._add(data[start:], out)
                return out
            self._add(data[start:end], out)
            start = end + 1
            if self._skipping_first:
                self._skipping_first = False
            elif self._overflowing:
                self._overflowing = False
            else:
                out.append(bytes(self._buffer))
            self._buffer.clear()

    def _add(self, chunk: bytes, out: list) -> None:
        if self._skipping_first or self._overflowing:
            return
        self._buffer += chunk
        if len(self._buffer) > self.max_length:
            out.append(TooLong(bytes(self._buffer[: self.max_length])))
            self._overflowing = True
            self._buffer.clear()


@dataclass(frozen=True)
class TooLong:
    """The start of a line that exceeded the length limit."""

    head: bytes
