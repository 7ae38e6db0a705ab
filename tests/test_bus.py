"""core/bus.py: delivery, unsubscribe, isolation of failing listeners, threads."""

import asyncio
import logging
import threading

import pytest

from smartanom.bus import EventBus


class Ping:
    def __init__(self, n):
        self.n = n


class Other:
    pass


def test_listeners_get_events_of_their_type_in_subscription_order():
    bus = EventBus()
    got = []
    bus.subscribe(Ping, lambda e: got.append(("a", e.n)))
    bus.subscribe(Ping, lambda e: got.append(("b", e.n)))
    bus.subscribe(Other, lambda e: got.append(("other",)))
    bus.publish(Ping(1))
    assert got == [("a", 1), ("b", 1)]


def test_unsubscribe_stops_delivery_and_is_idempotent():
    bus = EventBus()
    got = []
    unsubscribe = bus.subscribe(Ping, lambda e: got.append(e.n))
    bus.publish(Ping(1))
    unsubscribe()
    unsubscribe()
    bus.publish(Ping(2))
    assert got == [1]
    assert bus.listener_count(Ping) == 0


def test_a_listener_may_unsubscribe_itself_while_called():
    bus = EventBus()
    got = []

    def once(event):
        got.append(event.n)
        unsubscribe()

    unsubscribe = bus.subscribe(Ping, once)
    bus.subscribe(Ping, lambda e: got.append(-e.n))
    bus.publish(Ping(1))
    bus.publish(Ping(2))
    assert got == [1, -1, -2]


def test_failing_listener_is_logged_by_name_and_others_still_run(caplog):
    bus = EventBus()
    got = []

    def broken_listener(event):
        raise RuntimeError("boom")

    bus.subscribe(Ping, broken_listener)
    bus.subscribe(Ping, lambda e: got.append(e.n))
    with caplog.at_level(logging.ERROR, logger="smartanom.bus"):
        bus.publish(Ping(7))  # must not raise into the publisher
    assert got == [7]
    assert "broken_listener" in caplog.text and "boom" in caplog.text


@pytest.mark.gen_test
async def test_publish_threadsafe_delivers_on_the_loop_thread():
    bus = EventBus()
    bus.bind_loop(asyncio.get_running_loop())
    arrived = asyncio.Event()
    threads = []

    def listener(event):
        threads.append(threading.get_ident())
        arrived.set()

    bus.subscribe(Ping, listener)
    worker = threading.Thread(target=bus.publish_threadsafe, args=(Ping(1),))
    worker.start()
    worker.join()
    await asyncio.wait_for(arrived.wait(), 5)
    assert threads == [threading.get_ident()]


@pytest.mark.gen_test
async def test_coroutine_listener_runs_and_its_failure_is_logged(caplog):
    bus = EventBus()
    done = asyncio.Event()

    async def good(event):
        done.set()

    async def bad_async_listener(event):
        raise ValueError("async boom")

    bus.subscribe(Ping, bad_async_listener)
    bus.subscribe(Ping, good)
    with caplog.at_level(logging.ERROR, logger="smartanom.bus"):
        bus.publish(Ping(1))
        await asyncio.wait_for(done.wait(), 5)
        await asyncio.sleep(0.05)
    assert "bad_async_listener" in caplog.text


def test_publish_threadsafe_without_a_loop_says_so():
    with pytest.raises(RuntimeError, match="bind_loop"):
        EventBus().publish_threadsafe(Ping(1))
