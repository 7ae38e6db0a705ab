"""The loop watchdog: notices when something holds the event loop, and names it.

Every sensor, every dashboard and the HTTP API share one asyncio loop, so a
plugin that blocks it (a `time.sleep`, a blocking read, a long computation)
stalls them all. A heartbeat callback runs on the loop every `threshold / 4`
seconds; a watcher thread checks it. When the heartbeat is older than
`threshold`, the watcher takes the loop thread's stack right then (where it
is stuck) and the task running (`plugin:<label>` for a plugin instance's
task). When the loop runs again the stall is logged once, with its length,
the culprit and that stack, and counted: per plugin instance in
GET /api/plugins (`instances[].loop_stalls`) and in total in /api/health
(`loop`).

The status tracker does not need this module to be fair to devices during a
stall: it measures its own lateness (see core/status.py).
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import threading
import time
import traceback
from types import FrameType
from dataclasses import dataclass
from typing import Callable

import pluggy
from pydantic import BaseModel, ConfigDict, Field

from smartanom.protocol import format_timestamp

log = logging.getLogger("smartanom.watchdog")

_ASYNCIO_DIR = os.path.dirname(asyncio.__file__)
_PLUGGY_DIR = os.path.dirname(pluggy.__file__)


class WatchdogConfig(BaseModel):
    """`watchdog:` in the hub's YAML."""

    model_config = ConfigDict(extra="forbid", strict=True)

    enabled: bool = True
    threshold: float = Field(1.0, ge=0.05, le=60, description="seconds the loop may be held before it is reported")


@dataclass
class Stall:
    culprit: str  # "plugin instance X", "task Y (coroutine)", or "callback f (file:line)"
    instance: str | None  # the plugin instance's label, when it was one
    stack: str
    began: float  # wall-clock time of the last heartbeat before the stall
    duration: float = 0.0


class LoopWatchdog:
    def __init__(self, threshold: float = 1.0, on_stall: Callable[[Stall], None] | None = None):
        self.threshold = threshold
        self.period = threshold / 4
        self.on_stall = on_stall
        self.stalls = 0
        self.longest = 0.0
        self.last: Stall | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread = 0
        self._lock = threading.Lock()
        self._beat = 0.0  # monotonic time of the last heartbeat
        self._current: Stall | None = None  # a stall seen by the watcher, not yet reported
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._handle: asyncio.TimerHandle | None = None

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._beat = time.monotonic()
        self._handle = self._loop.call_later(self.period, self._heartbeat)
        self._thread = threading.Thread(target=self._watch, name="loop-watchdog", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._handle is not None:
            self._handle.cancel()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def as_dict(self) -> dict:
        last = self.last
        return {
            "threshold": self.threshold,
            "stalls": self.stalls,
            "longest": round(self.longest, 3),
            "last": None if last is None else {
                "culprit": last.culprit, "at": format_timestamp(last.began), "duration": round(last.duration, 3),
            },
        }

    def _heartbeat(self) -> None:
        now = time.monotonic()
        with self._lock:
            stall, self._current = self._current, None
            held = now - self._beat
            self._beat = now
        if stall is not None:
            stall.duration = held
            self._report(stall)
        self._handle = self._loop.call_later(self.period, self._heartbeat)

    def _report(self, stall: Stall) -> None:
        self.stalls += 1
        self.longest = max(self.longest, stall.duration)
        self.last = stall
        log.warning("The event loop was held for %.1f s (threshold %g s) by %s; every sensor and client waited. "
                    "It was here:\n%s", stall.duration, self.threshold, stall.culprit, stall.stack.rstrip())
        if self.on_stall is not None:
            try:
                self.on_stall(stall)
            except Exception:  # noqa: BLE001 - counting must not break reporting
                log.exception("stall listener failed")

    def _watch(self) -> None:
        while not self._stop.wait(self.period):
            with self._lock:
                if self._current is not None or time.monotonic() - self._beat <= self.threshold:
                    continue
                began = time.time() - (time.monotonic() - self._beat)
                self._current = self._describe(began)

    def _describe(self, began: float) -> Stall:
        frame = sys._current_frames().get(self._loop_thread)
        frames = traceback.extract_stack(frame) if frame is not None else []
        stack = "".join(traceback.format_list(frames))
        hook = _running_hook(frame)
        # Reading the loop's current task from this thread is a dict lookup; at
        # worst it names the task that ran just before, never crashes.
        task = asyncio.current_task(self._loop)
        if hook is not None:
            # A hook runs inside whichever task published the event (an on_reading
            # hook inside the task of the instance whose reading it was): the
            # plugin whose hook is on the stack is the culprit, not that instance.
            inside = f", inside task {task.get_name()}" if task is not None else ""
            return Stall(f"plugin {hook}{inside}", None, stack, began)
        if task is not None:
            name = task.get_name()
            if name.startswith("plugin:"):
                label = name.removeprefix("plugin:")
                return Stall(f"plugin instance {label}", label, stack, began)
            coro = task.get_coro()
            return Stall(f"task {name} ({getattr(coro, '__qualname__', coro)})", None, stack, began)
        # A plain callback (a protocol's data_received, a call_soon): the frame
        # that asyncio's Handle._run called.
        runs = [i for i, f in enumerate(frames) if f.filename.startswith(_ASYNCIO_DIR) and f.name == "_run"]
        first = frames[runs[-1] + 1] if runs and runs[-1] + 1 < len(frames) else None
        where = f"callback {first.name} ({first.filename}:{first.lineno})" if first else "a callback"
        return Stall(where, None, stack, began)


def _running_hook(frame: FrameType | None) -> str | None:
    """`NAME's HOOK hook` for the innermost pluggy hook implementation on the stack, if any.

    Only within the callback the loop is running (up to asyncio's Handle._run):
    whatever runs the loop itself (pytest, say) may be inside a hook too.
    """
    while frame is not None:
        if frame.f_code.co_filename.startswith(_ASYNCIO_DIR) and frame.f_code.co_name == "_run":
            return None
        if frame.f_code.co_filename.startswith(_PLUGGY_DIR) and "hook_impl" in frame.f_code.co_varnames:
            impl = frame.f_locals.get("hook_impl")
            name = getattr(impl, "plugin_name", None)
            if name is not None:
                return f"{name}'s {impl.function.__name__} hook"
        frame = frame.f_back
    return None
