"""EC temperature compensation: conductivity reported at a reference temperature.

Linear compensation, as conductivity meters do it:
    EC_ref = EC_T / (1 + alpha * (T - T_ref))
with alpha 0.02 (2 %/C) and T_ref 25 C by default. docs/calibration.md names
the source and what the hub does when the water temperature is stale.
"""

from __future__ import annotations


def compensate(ec: float, temperature_c: float, coefficient: float = 0.02, reference_c: float = 25.0) -> float:
    """`ec` measured at `temperature_c`, as it would read at `reference_c`."""
    factor = 1.0 + coefficient * (temperature_c - reference_c)
    if factor <= 0:
        raise ValueError(f"temperature {temperature_c:g} C is out of range for a {coefficient * 100:g} %/C compensation")
    return ec / factor


def coefficient_from(ec1: float, t1: float, ec2: float, t2: float, reference_c: float = 25.0) -> float:
    """The linear coefficient (per C) of a solution measured uncompensated at two temperatures."""
    return (ec2 - ec1) / (ec1 * (t2 - reference_c) - ec2 * (t1 - reference_c))
