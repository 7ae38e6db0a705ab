"""plugins/modbus/decoding.py: registers -> number -> reading, against hand-worked vectors."""

import math

import pytest

from smartanom.builtin.modbus.decoding import DATA_TYPES, decode, encode, register_count, to_value

# 1.5 as an IEEE-754 float32 is 0x3FC00000: bytes A=3F B=C0 C=00 D=00.
FLOAT_1_5 = {
    ("big", "big"): [0x3FC0, 0x0000],       # ABCD
    ("little", "big"): [0x0000, 0x3FC0],    # CDAB
    ("big", "little"): [0xC03F, 0x0000],    # BADC
    ("little", "little"): [0x0000, 0xC03F], # DCBA
}


@pytest.mark.parametrize("orders, registers", FLOAT_1_5.items())
def test_float32_in_every_order(orders, registers):
    assert decode(registers, "float32", *orders) == 1.5


@pytest.mark.parametrize(
    "data_type, registers, orders, expected",
    [
        ("int16", [0xFFFF], ("big", "big"), -1),
        ("int16", [0x8000], ("big", "big"), -32768),
        ("int16", [0xFEFF], ("big", "little"), -2),            # bytes swapped: 0xFFFE
        ("uint16", [0xFFFF], ("big", "big"), 65535),
        ("uint16", [0x3412], ("big", "little"), 0x1234),
        ("int32", [0xFFFF, 0xFFFE], ("big", "big"), -2),
        ("int32", [0xFFFE, 0xFFFF], ("little", "big"), -2),
        ("uint32", [0x0001, 0x0002], ("big", "big"), 65538),
        ("uint32", [0x0002, 0x0001], ("little", "big"), 65538),
        ("uint32", [0x0100, 0x0200], ("big", "little"), 65538),
        ("uint32", [0x0200, 0x0100], ("little", "little"), 65538),
        ("int64", [0xFFFF, 0xFFFF, 0xFFFF, 0xFFFF], ("big", "big"), -1),
        ("uint64", [0x0000, 0x0000, 0x0001, 0x0000], ("big", "big"), 65536),
        ("uint64", [0x0000, 0x0001, 0x0000, 0x0000], ("little", "big"), 65536),
        ("float64", [0x3FF8, 0, 0, 0], ("big", "big"), 1.5),
        ("float64", [0, 0, 0, 0x3FF8], ("little", "big"), 1.5),
        ("float64", [0, 0, 0, 0xF83F], ("little", "little"), 1.5),
    ],
)
def test_known_vectors(data_type, registers, orders, expected):
    assert decode(registers, data_type, *orders) == expected


@pytest.mark.parametrize("data_type", DATA_TYPES)
@pytest.mark.parametrize("word_order", ["big", "little"])
@pytest.mark.parametrize("byte_order", ["big", "little"])
def test_encode_is_the_inverse_of_decode(data_type, word_order, byte_order):
    value = {"int16": -1234, "uint16": 54321, "int32": -123456789, "uint32": 3000000000,
             "float32": -12.25, "int64": -(2**40) - 7, "uint64": 2**63 + 5, "float64": 6.02214076e23}[data_type]
    registers = encode(value, data_type, word_order, byte_order)
    assert len(registers) == register_count(data_type)
    assert decode(registers, data_type, word_order, byte_order) == value


def test_wrong_register_count_is_an_error_not_a_value():
    with pytest.raises(ValueError, match="float32 needs 2 register"):
        decode([0x3FC0], "float32")
    with pytest.raises(ValueError, match="16-bit"):
        decode([70000], "uint16")


def test_nan_decodes_as_nan_so_the_caller_can_refuse_it():
    assert math.isnan(decode([0x7FC0, 0x0000], "float32"))


def test_scale_offset_precision():
    assert to_value(650, scale=0.01, precision=2) == 6.5
    assert to_value(-40, scale=0.1) == pytest.approx(-4.0)
    assert to_value(1413.0, scale=0.001, precision=3) == 1.413
    assert to_value(100, scale=0.5, offset=-10) == 40.0
    assert to_value(2.71828, precision=0) == 3.0
    assert to_value(1, scale=1 / 3) == pytest.approx(0.3333333)  # no precision: not rounded
    assert isinstance(to_value(7), float)
