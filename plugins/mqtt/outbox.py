"""The bounded queue between the bus and the broker.

Bus listeners put messages in at any time, connected or not; the sender takes
them out while a connection is up and puts back what the broker did not
confirm. Beyond `maxlen` the oldest message is dropped (the freshest readings
matter most after an outage) and counted, so the loss is visible.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Iterable

from smartanom.builtin.mqtt.messages import Message


class Outbox:
    def __init__(self, maxlen: int):
        self.maxlen = maxlen
        self.dropped = 0
        self._queue: deque[Message] = deque()
        self._ready = asyncio.Event()

    def __len__(self) -> int:
        return len(self._queue)

    def put(self, message: Message) -> None:
        self._queue.append(message)
        self._trim()
        self._ready.set()

    def put_back(self, messages: Iterable[Message]) -> None:
        """Return unconfirmed messages to the front, in their original order."""
        self._queue.extendleft(reversed(list(messages)))
        self._trim()
        if self._queue:
            self._ready.set()

    async def take(self, limit: int) -> list[Message]:
        """Wait for at least one message; return up to `limit`, oldest first."""
        while not self._queue:
            self._ready.clear()
            await self._ready.wait()
        count = min(limit, len(self._queue))
        return [self._queue.popleft() for _ in range(count)]

    def _trim(self) -> None:
        while len(self._queue) > self.maxlen:
            self._queue.popleft()
            self.dropped += 1
