"""The pause book of sync/ops/remotes.py on both stores: pause, skip, back off, probe once, resume."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from adapters.errors import AuthError, BudgetExhausted, RateLimited, RemoteError, TransientError
from sync.ops import metrics
from sync.ops.remotes import PausePolicy, Remotes, classify


class FakeClock:
    def __init__(self) -> None:
        self.now = datetime(2026, 12, 2, 9, 0, tzinfo=timezone.utc)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def remotes(store, clock):
    return Remotes(store, policy=PausePolicy(down_seconds=60, auth_seconds=300, budget_seconds=900,
                                              max_seconds=1000), clock=clock, instance="one")


def fails(error):
    def work():
        raise error
    return work


class Calls:
    def __init__(self) -> None:
        self.count = 0

    def __call__(self) -> None:
        self.count += 1


def test_classify():
    assert classify(BudgetExhausted("x")) == "budget"
    assert classify(AuthError("x")) == "auth"
    assert classify(TransientError("x")) == classify(RateLimited("x", 5)) == "down"
    assert classify(RemoteError("x")) is None and classify(ValueError()) is None


def test_a_remote_out_of_allowance_is_skipped_until_it_is_looked_at_again(remotes, clock):
    assert remotes.run("salesforce", Calls()).status == "ok"
    outcome = remotes.run("salesforce", fails(BudgetExhausted("Salesforce API limit reached")))
    assert outcome.status == "paused" and outcome.state.reason == "budget"
    assert outcome.state.paused_until == clock.now + timedelta(seconds=900)
    assert outcome.describe() == ("salesforce paused (out of API allowance) until 2026-12-02 09:15:00 UTC: "
                                  "Salesforce API limit reached")
    work = Calls()
    clock.advance(899)
    skipped = remotes.run("salesforce", work)
    assert (skipped.status, work.count) == ("skipped", 0)
    assert remotes.run("hubspot", work).status == "ok" and work.count == 1  # the others go on
    clock.advance(1)
    assert remotes.run("salesforce", work).status == "ok" and work.count == 2
    state = remotes.state("salesforce")
    assert (state.state, state.reason, state.failures, state.paused_until) == ("ok", None, 0, None)
    assert state.message == "Salesforce API limit reached"  # the last error stays visible
    assert state.last_success_at == clock.now


def test_backoff_doubles_up_to_the_cap_and_the_stretch_keeps_its_start(remotes, clock):
    started = clock.now
    pauses = []
    for _ in range(4):
        state = remotes.run("hubspot", fails(AuthError("HubSpot rejected the token"))).state
        pauses.append((state.paused_until - clock.now).total_seconds())
        assert state.paused_since == started and state.paused_for(clock.now) == (clock.now - started).total_seconds()
        clock.advance(pauses[-1])
    assert pauses == [300, 600, 1000, 1000]
    assert remotes.state("hubspot").failures == 4
    # Another reason starts its own count.
    state = remotes.run("hubspot", fails(TransientError("HubSpot: HTTP 503"))).state
    assert (state.reason, state.failures, (state.paused_until - clock.now).total_seconds()) == ("down", 1, 60)


def test_retry_after_longer_than_the_backoff_is_honoured(remotes, clock):
    state = remotes.run("ga4", fails(RateLimited("slow down", retry_after=240))).state
    assert (state.reason, (state.paused_until - clock.now).total_seconds()) == ("down", 240)


def test_other_errors_fail_the_work_but_do_not_pause_the_remote(remotes, clock):
    outcome = remotes.run("salesforce", fails(RemoteError("Salesforce update: 400 JSON_PARSER_ERROR")))
    assert outcome.status == "failed" and outcome.error == "Salesforce update: 400 JSON_PARSER_ERROR"
    assert not remotes.state("salesforce").paused
    bug = remotes.run("salesforce", fails(KeyError("Id")))
    assert bug.status == "failed" and bug.error == "KeyError: 'Id'"
    assert remotes.state("salesforce").message == "KeyError: 'Id'"
    assert remotes.run("salesforce", Calls()).status == "ok"


def test_passthrough_errors_propagate(remotes):
    class Stop(Exception):
        pass

    with pytest.raises(Stop):
        remotes.run("salesforce", fails(Stop()), passthrough=(Stop,))
    assert remotes.state("salesforce").message is None


def test_one_instance_probes_a_remote_whose_pause_is_over(store, remotes, clock):
    other = Remotes(store, clock=clock, instance="two")
    remotes.run("salesforce", fails(TransientError("down")))
    clock.advance(60)
    assert remotes._claim_probe("salesforce")
    assert not other._claim_probe("salesforce")  # the other instance keeps skipping while the probe runs
    work = Calls()
    assert other.run("salesforce", work).status == "skipped" and work.count == 0
    clock.advance(PausePolicy().probe_lease_seconds)  # a prober that died frees the probe after its lease
    assert other.run("salesforce", work).status == "ok" and work.count == 1
    assert not remotes.state("salesforce").paused


def test_states_lists_known_remotes_and_feeds_the_metrics(remotes, clock):
    remotes.run("hubspot", fails(AuthError("no")))
    clock.advance(30)
    names = [(s.name, s.state) for s in remotes.states(["salesforce", "ga4", "hubspot"])]
    assert names == [("ga4", "ok"), ("hubspot", "paused"), ("salesforce", "ok")]
    assert metrics.remote_up.labels("hubspot")._value.get() == 0
    assert metrics.remote_up.labels("ga4")._value.get() == 1
    assert metrics.remote_paused_seconds.labels("hubspot")._value.get() == 30


def test_pause_and_resume_by_hand(remotes, clock):
    state = remotes.pause("meta", "auth", "token revoked", seconds=10)
    assert state.paused and state.paused_until == clock.now + timedelta(seconds=10)
    remotes.resume("meta")
    assert not remotes.state("meta").paused
    with pytest.raises(ValueError):
        remotes.pause("meta", "sleepy", "x")
