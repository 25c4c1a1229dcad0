"""One retry policy for every remote call, built from data (as dlt does) and applied in one place.

What is retried is decided by the error tree, not by each call site: a
:class:`~adapters.errors.TransientError` is retried with exponential backoff and jitter, a
:class:`~adapters.errors.RateLimited` waits at least its ``retry_after``, and anything else
(configuration, remote contract, budget, record errors) is raised at once. ``sleep`` is
injectable so tests run retries without waiting.
"""
from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass, field
from typing import Callable, TypeVar

from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt, stop_after_delay
from tenacity.wait import wait_base

from adapters.errors import RateLimited, TransientError

log = logging.getLogger(__name__)

T = TypeVar("T")


class _BackoffOrRetryAfter(wait_base):
    """Exponential backoff with full jitter, or the server's ``Retry-After`` when it gave one."""

    def __init__(self, initial: float, maximum: float, rng: random.Random) -> None:
        self.initial, self.maximum, self.rng = initial, maximum, rng

    def __call__(self, retry_state: RetryCallState) -> float:
        error = retry_state.outcome.exception() if retry_state.outcome else None
        backoff = min(self.maximum, self.initial * 2 ** (retry_state.attempt_number - 1))
        jittered = backoff / 2 + self.rng.uniform(0, backoff / 2)
        if isinstance(error, RateLimited) and error.retry_after is not None:
            return min(max(error.retry_after, 0.0), max(self.maximum, error.retry_after))
        return jittered


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try. ``attempts`` counts the first call; ``give_up_after`` bounds the total."""

    attempts: int = 5
    initial_wait: float = 0.5
    max_wait: float = 30.0
    give_up_after: float = 300.0
    sleep: Callable[[float], None] = field(default=time.sleep, compare=False)
    seed: int | None = None

    def retrying(self, what: str) -> Retrying:
        def before_sleep(state: RetryCallState) -> None:
            error = state.outcome.exception() if state.outcome else None
            log.warning("%s failed (attempt %d of %d): %s; retrying in %.1fs", what, state.attempt_number,
                        self.attempts, getattr(error, "user_message", error), state.upcoming_sleep)

        return Retrying(
            retry=retry_if_exception_type(TransientError),
            wait=_BackoffOrRetryAfter(self.initial_wait, self.max_wait, random.Random(self.seed)),
            stop=stop_after_attempt(self.attempts) | stop_after_delay(self.give_up_after),
            sleep=self.sleep,
            reraise=True,
            before_sleep=before_sleep,
        )

    def call(self, what: str, function: Callable[[], T]) -> T:
        """Run ``function`` under the policy; ``what`` names it in logs ("hubspot batch update")."""
        return self.retrying(what)(function)
