"""Client-side pacing against a frozen clock: what waits, for how long, and what the remote's
headers change."""
from __future__ import annotations

from adapters.ratelimit import SKEW_SECONDS, SlidingWindowLimiter


class FakeTime:
    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def limiter(limit: int = 3, window: float = 10.0) -> tuple[SlidingWindowLimiter, FakeTime]:
    time = FakeTime()
    return SlidingWindowLimiter(limit, window, clock=time.clock, sleep=time.sleep), time


def test_a_burst_up_to_the_limit_passes_and_the_next_call_waits_for_the_oldest_to_leave():
    pacer, time = limiter()
    for _ in range(3):
        pacer.acquire()
        time.now += 1
    assert time.slept == []
    pacer.acquire()  # the first call, at 1000, leaves the window at 1010
    assert time.now == 1010.001 and len(time.slept) == 1


def test_calls_reported_by_the_remote_but_not_ours_hold_their_slots_for_a_window():
    pacer, time = limiter(limit=10)
    pacer.acquire()
    pacer.observe(limit=10, remaining=5)  # 5 used, 1 of them ours: 4 calls elsewhere
    for _ in range(5):
        pacer.acquire()
    assert time.slept == []
    time.now += 1
    pacer.acquire()  # the window is full (6 ours + 4 elsewhere) until our first call leaves
    assert time.now == 1010.001


def test_our_own_call_leaving_the_remote_window_late_is_not_taken_for_someone_elses():
    pacer, time = limiter(limit=2)
    pacer.acquire()
    time.now += 10.0 + SKEW_SECONDS / 2  # gone from our window, still counted by the remote
    pacer.observe(limit=2, remaining=1)
    pacer.acquire()
    pacer.acquire()
    assert time.slept == []


def test_calls_elsewhere_do_not_keep_older_calls_from_leaving():
    pacer, time = limiter(limit=3)
    pacer.acquire()
    pacer.acquire()
    time.now += 5
    pacer.observe(remaining=0)  # the remote counts 3: one more call elsewhere, stamped now
    time.now += 5 + SKEW_SECONDS + 0.1  # our two have left; the other one has 5 s to go
    pacer.acquire()
    pacer.acquire()
    assert time.slept == []
    pacer.acquire()
    assert time.now == 1000 + 5 + 10 + 0.001


def test_a_429_fills_the_window_from_now():
    pacer, time = limiter(limit=2)
    pacer.penalise()
    pacer.acquire()
    assert time.slept == [10.001]
