"""Derived sensors: TDS, VPD and DLI computed from other sensors' latest readings."""
