"""Calibration: hardware-independent curves for any sensor's raw readings.

fit.py (curves, pH probe health), ec.py (temperature compensation), flow.py
(the guided session and its stability rule), store.py (the calibrations
table), service.py (the run-time pipeline the hub calls), api.py (HTTP).
docs/calibration.md is the grower's guide.
"""
