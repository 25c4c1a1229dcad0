"""The one retry policy: what is retried, how long it waits, when it gives up."""
from __future__ import annotations

import pytest

from adapters.errors import ConfigError, RateLimited, RemoteError, TransientError
from adapters.retry import RetryPolicy


class Flaky:
    def __init__(self, *errors):
        self.errors = list(errors)
        self.calls = 0

    def __call__(self):
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


def policy(sleeps, **kwargs):
    return RetryPolicy(sleep=sleeps.append, seed=1, **kwargs)


def test_transient_errors_are_retried_with_growing_waits():
    sleeps = []
    flaky = Flaky(TransientError("503"), TransientError("reset"), TransientError("503"))
    assert policy(sleeps, attempts=5, initial_wait=1, max_wait=60).call("x", flaky) == "ok"
    assert flaky.calls == 4 and len(sleeps) == 3
    assert 0.5 <= sleeps[0] <= 1 and 1 <= sleeps[1] <= 2 and 2 <= sleeps[2] <= 4


def test_retry_after_is_honoured():
    sleeps = []
    flaky = Flaky(RateLimited("429", retry_after=7.5))
    assert policy(sleeps).call("x", flaky) == "ok"
    assert sleeps == [7.5]


@pytest.mark.parametrize("error", [ConfigError("bad token"), RemoteError("contract"), ValueError("bug")])
def test_permanent_errors_are_not_retried(error):
    sleeps = []
    flaky = Flaky(error)
    with pytest.raises(type(error)):
        policy(sleeps).call("x", flaky)
    assert flaky.calls == 1 and sleeps == []


def test_gives_up_after_the_attempts_and_reraises_the_last_error():
    sleeps = []
    flaky = Flaky(*[TransientError(f"503 #{n}") for n in range(10)])
    with pytest.raises(TransientError, match="503 #2"):
        policy(sleeps, attempts=3).call("x", flaky)
    assert flaky.calls == 3 and len(sleeps) == 2
