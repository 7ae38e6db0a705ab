"""The bounded queue between the bus and the broker (plugins/mqtt/outbox.py)."""

import asyncio


from smartanom.builtin.mqtt.messages import Message
from smartanom.builtin.mqtt.outbox import Outbox


def message(n: int) -> Message:
    return Message(f"t/{n}", str(n), 1, False)


def test_beyond_the_bound_the_oldest_are_dropped_and_counted():
    async def scenario():
        outbox = Outbox(3)
        for n in range(5):
            outbox.put(message(n))
        assert (len(outbox), outbox.dropped) == (3, 2)
        assert [m.payload for m in await outbox.take(10)] == ["2", "3", "4"]

    asyncio.run(scenario())


def test_unconfirmed_messages_go_back_in_front_in_order():
    async def scenario():
        outbox = Outbox(10)
        for n in range(4):
            outbox.put(message(n))
        batch = await outbox.take(2)
        outbox.put(message(4))
        outbox.put_back(batch)
        assert [m.payload for m in await outbox.take(10)] == ["0", "1", "2", "3", "4"]
        assert outbox.dropped == 0

    asyncio.run(scenario())


def test_take_waits_for_a_message():
    async def scenario():
        outbox = Outbox(10)
        waiting = asyncio.ensure_future(outbox.take(5))
        await asyncio.sleep(0.01)
        assert not waiting.done()
        outbox.put(message(7))
        assert [m.payload for m in await asyncio.wait_for(waiting, 5)] == ["7"]

    asyncio.run(scenario())
