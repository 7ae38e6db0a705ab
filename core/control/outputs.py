"""Outputs: what a plugin provides to switch things (`OutputKind`), and the
hub's bank of configured outputs that every switch goes through.

A plugin returns `OutputKind`s from `register_outputs`; each entry of YAML's
`outputs:` names one by `type:` and is validated against its `options` model.
The hub then asks the kind's `create(options, ctx)` for a driver: an object
with `async set(on: bool)` (raise on failure: hardware gone, no acknowledgement)
and optionally `async close()`.

Every switch, whoever asks (schedule, rule, dose, manual, interlock, safe),
goes through `OutputBank.switch`, which is where dry-run, the actuation
record and the `OutputChanged` event live, so none of them can be skipped.
"""

from __future__ import annotations

import inspect
import logging
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from pydantic import BaseModel, ConfigDict, Field, field_validator

if TYPE_CHECKING:
    from smartanom.bus import EventBus
    from smartanom.control.journal import Journal

log = logging.getLogger("smartanom.control.outputs")

OUTPUT_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")

# Why an output was switched; stored with every actuation and sent to clients.
SOURCES = ("start", "schedule", "rule", "dose", "manual", "interlock", "safe")


class OutputError(Exception):
    """A driver could not switch its output (connection lost, no acknowledgement)."""


def on_off(value: Any) -> bool:
    """YAML's on/off/true/false (which it reads as booleans) or the words 'on'/'off' -> bool."""
    if isinstance(value, bool):
        return value
    if value in ("on", "off"):
        return value == "on"
    raise ValueError(f"must be on or off, got {value!r}")


class OutputOptions(BaseModel):
    """Base class of an output's YAML entry. A plugin subclasses it and adds its keys."""

    model_config = ConfigDict(extra="forbid", strict=True)

    id: str = Field(description="short name used by rules, the API and the log (a-z, 0-9, _ and -)")
    name: str = Field(min_length=1, description="what people see")
    type: str
    device: int | None = Field(None, description="the device this output belongs to (its page, its WebSocket stream)")
    # The state the hub puts the output in at start, at stop, after a crash of the
    # control loop, and whenever nothing asks otherwise. Off for any pump.
    safe_state: bool = False

    @field_validator("id")
    @classmethod
    def _id_shape(cls, value: str) -> str:
        if not OUTPUT_ID.match(value):
            raise ValueError(f"{value!r} is not a usable output id: use lower-case letters, digits, '_' and '-' (at most 64)")
        return value

    @field_validator("safe_state", mode="before")
    @classmethod
    def _safe_state(cls, value):
        return on_off(value)


@dataclass(frozen=True)
class OutputKind:
    """A kind of switchable thing a plugin can drive.

    name: what `type:` says in YAML.
    create: `create(options, ctx) -> driver`, called once at start; the driver has
        `async set(on: bool) -> None` and may have `async close() -> None`.
    options: the OutputOptions subclass that validates the YAML entry.
    """

    name: str
    create: Callable[[OutputOptions, "OutputContext"], Any]
    options: type[OutputOptions] = OutputOptions
    description: str = ""


class OutputContext:
    """What a driver may use: a logger, and `shared`, a dict the hub gives every
    platform instance and output alike, so that an output can reach the
    connection its plugin's platform instance already holds (a serial port, a
    Modbus client). Key it by your plugin's name and the instance's label."""

    def __init__(self, options: OutputOptions, shared: dict):
        self.options = options
        self.shared = shared
        self.log = logging.getLogger(f"smartanom.outputs.{options.type}")

    def instance_object(self, plugin: str, name: str | None, key: str) -> Any:
        """What the running instance `name` of `plugin`'s platform put in `shared`
        under `(plugin, label)`; with `name` None, that of its only running instance.
        Raises OutputError saying what runs (the YAML names one with `key: NAME`).
        Call it at each switch: instances come and go (start-up, restarts)."""
        found = {k[1]: obj for k, obj in self.shared.items() if isinstance(k, tuple) and len(k) == 2 and k[0] == plugin}
        if name is not None:
            if name not in found:
                raise OutputError(f"no running {plugin} plugin instance named {name!r} (running: {', '.join(found) or 'none'})")
            return found[name]
        if len(found) != 1:
            raise OutputError(f"{len(found)} {plugin} plugin instances are running: say which with '{key}: NAME'" if found else f"no {plugin} plugin instance is running")
        return next(iter(found.values()))


@dataclass(frozen=True, slots=True)
class OutputChanged:
    """Published on the bus after every switch (or dry-run switch)."""

    output: "Output"
    on: bool
    source: str
    reason: str
    timestamp: float
    dry_run: bool
    ok: bool
    error: str | None = None


@dataclass(frozen=True, slots=True)
class OverrideRequest:
    """Published on the bus by a plugin (e.g. a Home Assistant switch over MQTT) to ask
    the control loop for a manual override; refusals are logged, like the API's."""

    output_id: str
    on: bool
    seconds: float
    by: str


@dataclass(eq=False)
class Output:
    options: OutputOptions
    driver: Any
    on: bool | None = None  # None: not yet switched by this hub
    available: bool = True
    error: str | None = None
    source: str = ""
    reason: str = ""
    changed_at: float | None = None
    extra: dict = field(default_factory=dict)

    @property
    def id(self) -> str:
        return self.options.id

    def as_dict(self) -> dict:
        return {
            "id": self.id,
            "name": self.options.name,
            "type": self.options.type,
            "device_id": self.options.device,
            "state": None if self.on is None else ("on" if self.on else "off"),
            "safe_state": "on" if self.options.safe_state else "off",
            "available": self.available,
            "error": self.error,
            "source": self.source,
            "reason": self.reason,
            "changed_at": self.changed_at,
        }


class OutputBank:
    """Every configured output, and the one way to switch them."""

    def __init__(self, outputs: list[Output], bus: "EventBus", journal: "Journal", now: Callable[[], float], dry_run: bool = False):
        self.outputs: dict[str, Output] = {o.id: o for o in outputs}
        self.bus = bus
        self.journal = journal
        self.now = now
        self.dry_run = dry_run

    def get(self, output_id: str) -> Output | None:
        return self.outputs.get(output_id)

    async def switch(self, output_id: str, on: bool, source: str, reason: str) -> bool:
        """Switch, record and announce. Returns whether the output is now in that state.

        A driver's failure is recorded as a failed actuation and leaves the
        output unavailable until a later switch succeeds; it never raises here.
        """
        output = self.outputs[output_id]
        word = "on" if on else "off"
        error = None
        if self.dry_run:
            log.warning("DRY RUN: would switch %s %s (%s: %s)", output.id, word, source, reason)
        else:
            try:
                await output.driver.set(on)
            except Exception as exc:  # a driver's bug must not stop the others being made safe
                error = f"{type(exc).__name__}: {exc}"
        ok = error is None
        now = self.now()
        if ok:
            if not output.available:
                log.warning("Output %s is reachable again", output.id)
            output.on, output.available, output.error = on, True, None
            output.source, output.reason, output.changed_at = source, reason, now
            if not self.dry_run:
                log.info("Output %s %s (%s: %s)", output.id, word, source, reason)
        else:
            repeat = not output.available and output.error == error and output.extra.get("failed_state") is on
            output.available, output.error = False, error
            output.extra["failed_state"] = on
            if repeat:
                # The same failure again (retried every period while the hardware is gone):
                # recorded and streamed once, not 8640 times a day.
                return False
            log.error("Output %s could not be switched %s (%s: %s): %s", output.id, word, source, reason, error)
        self.journal.record_actuation(now, output.id, on, source, reason, self.dry_run, ok, error)
        self.bus.publish(OutputChanged(output, on, source, reason, now, self.dry_run, ok, error))
        return ok

    async def all_safe(self, source: str, reason: str) -> None:
        """Every output to its safe state; one failure does not stop the others."""
        for output in self.outputs.values():
            await self.switch(output.id, output.options.safe_state, source, reason)

    async def close(self) -> None:
        for output in self.outputs.values():
            close = getattr(output.driver, "close", None)
            if close is None:
                continue
            try:
                result = close()
                if inspect.isawaitable(result):
                    await result
            except Exception:
                log.exception("Output %s did not close cleanly", output.id)
