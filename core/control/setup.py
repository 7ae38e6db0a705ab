"""Building the control loop for a hub from its configuration."""

from __future__ import annotations

import logging
from typing import Mapping

from smartanom.control.clock import SystemClock
from smartanom.control.config import ControlConfig
from smartanom.control.engine import Control
from smartanom.control.journal import Journal
from smartanom.control.outputs import Output, OutputBank, OutputContext, OutputError, OutputKind, OutputOptions

log = logging.getLogger("smartanom.control")


class _Unusable:
    """Stands in for a driver whose creation failed: every switch fails with why,
    so the output shows as unavailable and dosing on it holds."""

    def __init__(self, why: str):
        self.why = why

    async def set(self, on: bool) -> None:
        raise OutputError(self.why)


def build_control(config: ControlConfig, outputs: list[OutputOptions], kinds: Mapping[str, OutputKind], bus, shared: dict, journal_path: str, clock=None) -> Control:
    clock = clock or SystemClock()
    journal = Journal(journal_path)
    journal.open()
    bank = []
    for options in outputs:
        try:
            driver = kinds[options.type].create(options, OutputContext(options, shared))
        except Exception as exc:
            log.error("Output %s (type %s) could not be set up: %s: %s", options.id, options.type, type(exc).__name__, exc, exc_info=exc)
            driver = _Unusable(f"could not be set up: {type(exc).__name__}: {exc}")
        bank.append(Output(options, driver))
    if config.dry_run:
        log.warning("Control in DRY RUN: outputs are logged and recorded, never switched (control.dry_run)")
    return Control(config, OutputBank(bank, bus, journal, clock.now, config.dry_run), bus, journal, clock)
