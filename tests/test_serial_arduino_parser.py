"""The serial line protocol (plugins/serial_arduino/parser.py), without a port."""

import pytest

from smartanom.builtin.serial_arduino.parser import (
    BAD_CHECKSUM,
    INVALID_UTF8,
    MISSING_CHECKSUM,
    NOT_A_READING,
    LineError,
    LineSplitter,
    TooLong,
    checksum,
    normalize_key,
    parse_line,
)


@pytest.mark.parametrize(
    "line,values",
    [
        (b"ph=6.82,ec=1.41,water_temperature=21.5", {"ph": 6.82, "ec": 1.41, "water_temperature": 21.5}),
        (b"ph=6.82 ec=1.41\twater_temperature=21.5", {"ph": 6.82, "ec": 1.41, "water_temperature": 21.5}),
        (b"ph = 6.82, ec = 1.41", {"ph": 6.82, "ec": 1.41}),
        (b"PH=6.8, Tds=702,", {"ph": 6.8, "tds": 702.0}),
        (b"t=-3.5 x=+2 y=.5 z=1e3", {"t": -3.5, "x": 2.0, "y": 0.5, "z": 1000.0}),
        (b"ph=6.82\r", {"ph": 6.82}),
        (b"pH          : 6.80", {"ph": 6.8}),
        (b"  Water Temp   :21.4 C", {"water temp": 21.4}),
        (b"EC : 1.41 mS/cm", {"ec": 1.41}),
        (b"Humidity: 71 %", {"humidity": 71.0}),
        (b"TDS: 702 ppm\r", {"tds": 702.0}),
        (b'{"ph": 6.8, "tds": 702, "water_temperature": 21.4}', {"ph": 6.8, "tds": 702.0, "water_temperature": 21.4}),
        (b'  {"PH ": 6.8}  ', {"ph": 6.8}),
    ],
)
def test_every_line_form_gives_its_values(line, values):
    parsed = parse_line(line)
    assert parsed.values == values
    assert parsed.bad_values == {}


@pytest.mark.parametrize("line", [b"", b"   ", b"\r", b"# SmarTanom node v1.2 ready", b"  #comment ph=1"])
def test_blank_and_comment_lines_give_nothing(line):
    assert parse_line(line) is None


@pytest.mark.parametrize(
    "line,good,bad",
    [
        (b"ph=6.8,ec=abc", {"ph": 6.8}, {"ec": "abc"}),
        (b"ph=nan ec=1.2", {"ec": 1.2}, {"ph": "nan"}),
        (b"ph=inf", {}, {"ph": "inf"}),
        (b"ph=1e999", {}, {"ph": "1e999"}),
        (b"ph=", {}, {"ph": ""}),
        (b"ph=6.8.1", {}, {"ph": "6.8.1"}),
        (b"time=12:30", {}, {"time": "12:30"}),
        (b"pH : ovf", {}, {"ph": "ovf"}),
        (b"pH : 6.8 (raw 512)", {}, {"ph": "6.8 (raw 512)"}),
        (b'{"ph": "6.8", "ec": 1.4}', {"ec": 1.4}, {"ph": '"6.8"'}),
        (b'{"ph": null, "on": true, "l": [1]}', {}, {"ph": "null", "on": "true", "l": "[1]"}),
        (b'{"ph": NaN}', {}, {"ph": "NaN"}),
    ],
)
def test_bad_values_are_listed_and_good_ones_kept(line, good, bad):
    parsed = parse_line(line)
    assert parsed.values == good
    assert parsed.bad_values == bad


@pytest.mark.parametrize(
    "line",
    [
        b"SmarTanom starting...",
        b"12.5",
        b"ph=6.8 garbage",
        b"a=b=c",
        b"=5",
        b": 6.8",
        b'{"ph": 6.8',
        b"[6.8, 1.4]",
        b"\x00\x00\x01",
    ],
)
def test_garbage_is_not_a_reading(line):
    with pytest.raises(LineError) as info:
        parse_line(line)
    assert info.value.kind == NOT_A_READING


@pytest.mark.parametrize("line", [b"\xff\xfe ph=6.8", b"ph=6.8\xc3", b"pH : \xe96.8"])
def test_invalid_utf8_is_its_own_problem(line):
    with pytest.raises(LineError) as info:
        parse_line(line)
    assert info.value.kind == INVALID_UTF8


def with_checksum(payload: bytes) -> bytes:
    return payload + b"*%02X" % checksum(payload)


def test_checksum_is_xor_of_the_bytes_before_the_star():
    assert checksum(b"") == 0
    assert checksum(b"ph=6.8") == ord("p") ^ ord("h") ^ ord("=") ^ ord("6") ^ ord(".") ^ ord("8")
    assert with_checksum(b"ph=6.8") == b"ph=6.8*" + b"%02X" % checksum(b"ph=6.8")


@pytest.mark.parametrize("payload", [b"ph=6.8,ec=1.4", b"pH   : 6.80", b'{"ph": 6.8}'])
def test_a_correct_checksum_is_checked_and_removed(payload):
    assert parse_line(with_checksum(payload)).values == parse_line(payload).values
    assert parse_line(with_checksum(payload) + b"\r").values == parse_line(payload).values


def test_a_wrong_checksum_drops_the_whole_line():
    line = with_checksum(b"ph=6.8,ec=1.4")
    corrupted = line.replace(b"6.8", b"6.9")
    with pytest.raises(LineError) as info:
        parse_line(corrupted)
    assert info.value.kind == BAD_CHECKSUM


def test_required_checksum_rejects_lines_without_one():
    with pytest.raises(LineError) as info:
        parse_line(b"ph=6.8", require_checksum=True)
    assert info.value.kind == MISSING_CHECKSUM
    assert parse_line(with_checksum(b"ph=6.8"), require_checksum=True).values == {"ph": 6.8}
    assert parse_line(b"# banner", require_checksum=True) is None


def test_keys_normalize_by_case_and_spaces():
    assert normalize_key("  Water   Temp ") == "water temp"
    assert normalize_key("pH") == "ph"


def test_splitter_drops_the_first_line_after_open():
    splitter = LineSplitter(64)
    assert splitter.feed(b"5,ec=1.41\r\n# hello\nph=6") == [b"# hello"]
    assert splitter.feed(b".8\r\n") == [b"ph=6.8\r"]


def test_splitter_joins_lines_across_chunks_byte_by_byte():
    splitter = LineSplitter(64, skip_first=False)
    out = []
    for byte in b"ph=6.8\nec=1.4\n\nlast":
        out += splitter.feed(bytes([byte]))
    assert out == [b"ph=6.8", b"ec=1.4", b""]


def test_splitter_cuts_an_overlong_line_and_recovers_at_the_next_newline():
    splitter = LineSplitter(16, skip_first=False)
    out = splitter.feed(b"ph=6.8\n" + b"x" * 10)
    out += splitter.feed(b"y" * 10)
    out += splitter.feed(b"z" * 100000)
    out += splitter.feed(b"zz\nec=1.4\n")
    assert out == [b"ph=6.8", TooLong(b"x" * 10 + b"y" * 6), b"ec=1.4"]
    assert len(splitter._buffer) == 0


def test_splitter_memory_stays_bounded_without_newlines():
    splitter = LineSplitter(16)
    for _ in range(1000):
        splitter.feed(b"a" * 1000)
    assert len(splitter._buffer) <= 16
    splitter.feed(b"\n")
    for _ in range(1000):
        splitter.feed(b"a" * 1000)
    assert len(splitter._buffer) <= 16


def test_a_line_exactly_at_the_limit_passes():
    splitter = LineSplitter(16, skip_first=False)
    assert splitter.feed(b"a" * 16 + b"\n") == [b"a" * 16]
