"""The event bus: the one place every reading and status change passes through.

Publishers (plugins, WebSocket clients, the status tracker) call `publish` on
the event loop, or `publish_threadsafe` from any other thread. Listeners are
plain callables run on the loop, in subscription order; they must not block.
A listener that raises is logged under its own name and never reaches the
publisher or the listeners after it.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from typing import Any, Callable

log = logging.getLogger("smartanom.bus")

Listener = Callable[[Any], Any]


def _name(listener: Listener) -> str:
    return getattr(listener, "__qualname__", None) or repr(listener)


class EventBus:
    def __init__(self, loop: asyncio.AbstractEventLoop | None = None):
        self._loop = loop
        # Tuples, replaced on (un)subscribe, so publish can iterate without a copy
        # and a listener may unsubscribe itself while being called.
        self._listeners: dict[type, tuple[Listener, ...]] = {}
        self._tasks: set[asyncio.Task] = set()

    def subscribe(self, event_type: type, listener: Listener) -> Callable[[], None]:
        """Call `listener(event)` for every published event of `event_type`.

        Coroutine functions are run as tasks. Returns a callable that unsubscribes;
        calling it twice is harmless.
        """
        self._listeners[event_type] = self._listeners.get(event_type, ()) + (listener,)

        def unsubscribe() -> None:
            current = self._listeners.get(event_type, ())
            if listener in current:
                remaining = list(current)
                remaining.remove(listener)
                self._listeners[event_type] = tuple(remaining)

        return unsubscribe

    def publish(self, event: Any) -> None:
        """Deliver `event` to its listeners now. Call this on the event loop only.

        Never waits: listeners that do I/O (storage, WebSocket clients) only queue
        work, so a slow consumer cannot hold up a publisher.
        """
        for listener in self._listeners.get(type(event), ()):
            try:
                result = listener(event)
                # Most listeners return None: skip isawaitable's ABC checks for them.
                if result is not None and inspect.isawaitable(result):
                    self._track(result, listener)
            except Exception:
                log.exception("Bus listener %s failed on %s", _name(listener), type(event).__name__)

    def publish_threadsafe(self, event: Any) -> None:
        """Publish from a thread that is not running the event loop."""
        if self._loop is None:
            raise RuntimeError("EventBus has no loop bound; call bind_loop() on the loop first")
        self._loop.call_soon_threadsafe(self.publish, event)

    def bind_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def listener_count(self, event_type: type) -> int:
        return len(self._listeners.get(event_type, ()))

    def _track(self, awaitable, listener: Listener) -> None:
        task = asyncio.ensure_future(awaitable)
        self._tasks.add(task)

        def done(t: asyncio.Task) -> None:
            self._tasks.discard(t)
            if not t.cancelled() and t.exception() is not None:
                log.error(
                    "Bus listener %s failed", _name(listener), exc_info=t.exception()
                )

        task.add_done_callback(done)
