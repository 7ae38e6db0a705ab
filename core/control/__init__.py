"""Outputs and control: switching relays, pumps and lights, safely.

outputs.py   what plugins provide (OutputKind) and the bank every switch goes through
engine.py    the control loop: schedules, threshold rules, dosing, overrides
dosing.py    pH/EC dosing in pulses within limits; interlocks.py its reasons to stop
journal.py   actuations and doses in SQLite (schema step 5)
clock.py     time as a dependency, simulated in tests
docs/control.md is the guide.
"""
