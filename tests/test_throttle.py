"""core/throttle.py: the one 'log at most once a minute' helper, on a driven clock."""

from smartanom import LogThrottle


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_first_at_once_then_once_per_period_per_key_counting_the_rest():
    clock = Clock()
    throttle = LogThrottle(60, clock=clock)
    assert throttle.allow("a") and throttle.skipped == 0
    assert not throttle.allow("a") and not throttle.allow("a")
    assert throttle.allow("b")  # each key on its own
    clock.now += 59.9
    assert not throttle.allow("a")
    clock.now += 0.1
    assert throttle.allow("a") and throttle.skipped == 3


def test_reset_lets_the_next_through_and_keys_from_outside_cannot_grow_memory():
    clock = Clock()
    throttle = LogThrottle(60, clock=clock, max_keys=3)
    assert throttle.allow() and not throttle.allow()
    throttle.reset()
    assert throttle.allow()
    for origin in ("x", "y", "z"):
        assert throttle.allow(origin)
    assert throttle.allow("w")  # a fourth key starts afresh: the others are forgotten...
    assert throttle.allow("x")  # ...so memory stays bounded, at the cost of an early line
