"""Per-remote isolation: one remote system in trouble never stops the others.

Every remote closedloop talks to has a name — ``salesforce``, ``hubspot``, ``ga4``, and the
ad-platform destinations of the outbox (``google_ads``, ``meta``, ...) — and its own budget,
circuit breaker and backoff. Jobs do their work *per remote* through :meth:`Remotes.run`; when a
remote is out of allowance, refuses our credentials or stays down through the adapter's
retries, it is **paused** with its reason and the time it will be tried again. The pause is a
row in the state store (``remote_states``), so every instance sharing the store, ``closedloop
status``, ``/healthz`` and ``/metrics`` see the same thing. While a remote is paused its work
is skipped, not failed: cursors do not move and outbox events stay pending, so the work waits
in its queue and resumes when the remote does. Nothing is dropped, and every other remote's
work goes on at full speed.

API (stable; jobs and destinations build on it)::

    remotes = Remotes(store, policy=PausePolicy.from_config(config), clock=now)  # one per process

    outcome = remotes.run("salesforce", lambda: enrich_salesforce(),
                          passthrough=(StopRequested,))          # -> RemoteRun
    #   "skipped"  the remote is paused (nothing was called); outcome.state says why and until when
    #   "ok"       the work ran; a paused remote that answered again is resumed
    #   "paused"   BudgetExhausted / AuthError / TransientError (incl. RateLimited): the remote
    #              is now paused — work committed before the error stays committed
    #   "failed"   any other error (a bug, a bad mapping, a contract problem): recorded as the
    #              remote's last error, the remote stays usable, the job reports a failure
    #   exceptions listed in ``passthrough`` (a shutdown) propagate untouched.

    remotes.state("salesforce") -> RemoteState     # what the store says now (ok if never seen)
    remotes.states() -> list[RemoteState]          # every remote the store knows, by name
    remotes.pause(name, reason, message, seconds=None) / remotes.resume(name)  # by hand (check, tests)
    classify(error) -> "budget" | "auth" | "down" | None

Backoff: the first pause lasts ``PausePolicy.<reason>_seconds`` and each failure in a row
doubles it, up to ``max_seconds`` (a ``RateLimited`` error's ``retry_after`` is honoured when
longer); an allowance pause is re-checked every ``budget_seconds``. When a pause ends, exactly
one caller across all instances claims the probe (a conditional UPDATE moves ``paused_until``
forward by ``probe_lease_seconds``, so a prober that dies mid-call only delays the next one);
the others keep skipping until the probe answers. Success closes the breaker.
"""
from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Iterable

from sqlalchemy import update
from sqlmodel import select

from adapters.errors import AuthError, BudgetExhausted, ClosedloopError, RateLimited, TransientError
from state import Store
from state.models import RemoteStatus
from state.upsert import upsert
from sync.ops import metrics

log = logging.getLogger(__name__)

REASONS = ("budget", "auth", "down")
WHY = {"budget": "out of API allowance", "auth": "credentials refused", "down": "not answering"}
SUCCESS_NOTE_SECONDS = 60  # how stale last_success_at may get before a success is written again


def classify(error: BaseException) -> str | None:
    """Why ``error`` pauses its remote: ``budget``, ``auth``, ``down``; None when it does not."""
    if isinstance(error, BudgetExhausted):
        return "budget"
    if isinstance(error, AuthError):
        return "auth"
    if isinstance(error, TransientError):
        return "down"
    return None


@dataclass(frozen=True)
class PausePolicy:
    """How long a remote is left alone (seconds)."""

    down_seconds: float = 60.0
    auth_seconds: float = 300.0
    budget_seconds: float = 900.0
    max_seconds: float = 3600.0
    probe_lease_seconds: float = 600.0

    @classmethod
    def from_config(cls, config: Any) -> "PausePolicy":
        settings = config.settings.remotes
        return cls(down_seconds=settings.down_pause_seconds, auth_seconds=settings.auth_pause_seconds,
                   budget_seconds=settings.budget_pause_seconds, max_seconds=settings.max_pause_seconds)

    def seconds(self, reason: str, failures: int, retry_after: float | None = None) -> float:
        """The pause after the ``failures``-th failure in a row."""
        if reason == "budget":
            pause = self.budget_seconds
        else:
            first = self.auth_seconds if reason == "auth" else self.down_seconds
            pause = min(self.max_seconds, first * 2 ** max(0, failures - 1))
        return max(pause, retry_after or 0.0)


@dataclass(frozen=True)
class RemoteState:
    """One remote as the store records it."""

    name: str
    state: str = "ok"  # ok | paused
    reason: str | None = None
    message: str | None = None
    failures: int = 0
    paused_since: datetime | None = None
    paused_until: datetime | None = None
    last_error_at: datetime | None = None
    last_success_at: datetime | None = None

    @property
    def paused(self) -> bool:
        return self.state == "paused"

    def paused_for(self, now: datetime) -> float:
        """Seconds this stretch of trouble has lasted (0 when not paused)."""
        return (now - self.paused_since).total_seconds() if self.paused and self.paused_since else 0.0

    def describe(self) -> str:
        """``paused (credentials refused) until 2026-12-02 10:05 UTC: <last error>`` or ``ok``."""
        if not self.paused:
            return "ok"
        until = f" until {self.paused_until:%Y-%m-%d %H:%M:%S} UTC" if self.paused_until else ""
        return f"paused ({WHY.get(self.reason or '', self.reason)}){until}: {self.message or 'no message'}"

    @classmethod
    def from_row(cls, row: RemoteStatus) -> "RemoteState":
        return cls(row.name, row.state, row.reason, row.message, row.failures, row.paused_since, row.paused_until,
                   row.last_error_at, row.last_success_at)


@dataclass(frozen=True)
class RemoteRun:
    """What happened to one remote's share of a job run."""

    name: str
    status: str  # ok | skipped | paused | failed
    error: str = ""
    state: RemoteState | None = None

    @property
    def succeeded(self) -> bool:
        return self.status == "ok"

    def describe(self) -> str:
        if self.status == "ok":
            return f"{self.name} ok"
        if self.status == "failed":
            return f"{self.name} failed: {self.error}"
        return f"{self.name} {self.state.describe() if self.state else self.status}"


class Remotes:
    """The pause book of every remote, kept in ``store`` (thread-safe: each call is its own
    transaction)."""

    def __init__(self, store: Store, *, policy: PausePolicy | None = None,
                 clock: Callable[[], datetime] | None = None, instance: str | None = None) -> None:
        self.store = store
        self.policy = policy or PausePolicy()
        self.clock = clock or (lambda: datetime.now(timezone.utc))
        self.instance = instance or f"{socket.gethostname()}:{os.getpid()}"

    # -- reading ----------------------------------------------------------------------

    def state(self, name: str) -> RemoteState:
        with self.store.session(readonly=True) as session:
            row = session.get(RemoteStatus, name)
        return RemoteState.from_row(row) if row else RemoteState(name)

    def states(self, names: Iterable[str] = ()) -> list[RemoteState]:
        """Every remote the store knows, plus ``names`` (as ok when never recorded), by name."""
        with self.store.session(readonly=True) as session:
            rows = {row.name: RemoteState.from_row(row) for row in session.exec(select(RemoteStatus)).all()}
        for name in names:
            rows.setdefault(name, RemoteState(name))
        found = [rows[name] for name in sorted(rows)]
        publish(found, self.clock())
        return found

    # -- running work -----------------------------------------------------------------

    def run(self, name: str, work: Callable[[], Any], *,
            passthrough: tuple[type[BaseException], ...] = ()) -> RemoteRun:
        """Do ``work`` for remote ``name`` unless it is paused (see the module docstring)."""
        state = self.state(name)
        if state.paused and not self._claim_probe(name):
            log.info("%s is paused; its work waits: %s", name, state.describe())
            return RemoteRun(name, "skipped", state=self.state(name))
        try:
            work()
        except passthrough:
            raise
        except ClosedloopError as exc:
            reason = classify(exc)
            if reason is None:
                log.error("%s: %s", name, exc.user_message)
                self._note_error(name, exc.user_message)
                return RemoteRun(name, "failed", exc.user_message, self.state(name))
            paused = self.failed(name, reason, exc.user_message,
                                 retry_after=exc.retry_after if isinstance(exc, RateLimited) else None)
            return RemoteRun(name, "paused", exc.user_message, paused)
        except Exception as exc:  # a bug or an unclassified library error: this remote's work only
            log.exception("%s: work failed unexpectedly", name)
            message = f"{type(exc).__name__}: {(str(exc).strip().splitlines() or [''])[0]}"
            self._note_error(name, message)
            return RemoteRun(name, "failed", message, self.state(name))
        self.succeeded(name, state)
        return RemoteRun(name, "ok", state=None)

    def failed(self, name: str, reason: str, message: str, *, retry_after: float | None = None) -> RemoteState:
        """Record a pausing failure: the remote is paused with backoff; returns its new state."""
        now = self.clock()
        with self.store.session() as session:
            row = _locked_row(session, name, now)
            failures = row.failures + 1 if row.state == "paused" and row.reason == reason else 1
            seconds = self.policy.seconds(reason, failures, retry_after)
            row.paused_since = row.paused_since if row.state == "paused" and row.paused_since else now
            row.state, row.reason, row.message, row.failures = "paused", reason, message[:2000], failures
            row.paused_until = now + timedelta(seconds=seconds)
            row.last_error_at, row.instance, row.updated_at = now, self.instance, now
            session.add(row)
            state = RemoteState.from_row(row)
        metrics.remote_failures.labels(name, reason).inc()
        publish([state], now)
        log.warning("%s paused (%s) for %ds after %d failure(s) in a row: %s", name, WHY[reason], seconds, failures,
                    message)
        return state

    def succeeded(self, name: str, before: RemoteState | None = None) -> None:
        """The remote answered: close its breaker (a write only when something changes)."""
        now = self.clock()
        before = before or self.state(name)
        if not before.paused and before.failures == 0 and before.last_success_at is not None and \
                (now - before.last_success_at).total_seconds() < SUCCESS_NOTE_SECONDS:
            return
        with self.store.session() as session:
            row = _locked_row(session, name, now)
            resumed = row.state == "paused"
            row.state, row.reason, row.failures, row.paused_since, row.paused_until = "ok", None, 0, None, None
            row.last_success_at, row.instance, row.updated_at = now, self.instance, now
            session.add(row)
            state = RemoteState.from_row(row)
        publish([state], now)
        if resumed:
            log.info("%s answers again; its waiting work resumes", name)

    # -- by hand ----------------------------------------------------------------------

    def pause(self, name: str, reason: str, message: str, seconds: float | None = None) -> RemoteState:
        """Pause ``name`` now (``seconds`` default: the policy's first pause for ``reason``)."""
        if reason not in REASONS:
            raise ValueError(f"reason must be one of {REASONS}")
        state = self.failed(name, reason, message)
        if seconds is not None:
            with self.store.session() as session:
                row = session.get(RemoteStatus, name)
                row.paused_until = self.clock() + timedelta(seconds=seconds)
                session.add(row)
                state = RemoteState.from_row(row)
        return state

    def resume(self, name: str) -> None:
        """Lift a pause now (e.g. after `closedloop check` logged in with fixed credentials)."""
        self.succeeded(name, RemoteState(name, "paused"))

    # -- internals --------------------------------------------------------------------

    def _claim_probe(self, name: str) -> bool:
        """After the pause: become the one caller (of all instances) that tries the remote."""
        now = self.clock()
        lease = now + timedelta(seconds=self.policy.probe_lease_seconds)
        with self.store.session() as session:
            claimed = session.execute(update(RemoteStatus).where(
                RemoteStatus.name == name, RemoteStatus.state == "paused", RemoteStatus.paused_until <= now)
                .values(paused_until=lease, instance=self.instance, updated_at=now)).rowcount
        if claimed:
            log.info("%s: the pause is over; trying it again", name)
        return bool(claimed)

    def _note_error(self, name: str, message: str) -> None:
        now = self.clock()
        with self.store.session() as session:
            row = _locked_row(session, name, now)
            row.message, row.last_error_at, row.instance, row.updated_at = message[:2000], now, self.instance, now
            session.add(row)


def _locked_row(session, name: str, now: datetime) -> RemoteStatus:
    """The remote's row, created if missing, locked for this transaction (PostgreSQL; SQLite
    writers are serialised anyway), so two instances never overwrite each other's counts."""
    upsert(session, RemoteStatus, [{"name": name, "state": "ok", "failures": 0, "updated_at": now}], ["name"])
    return session.get(RemoteStatus, name, with_for_update=True, populate_existing=True)


def publish(states: Iterable[RemoteState], now: datetime) -> None:
    """Set the remote gauges of ``/metrics`` from ``states``."""
    for state in states:
        metrics.remote_up.labels(state.name).set(0 if state.paused else 1)
        metrics.remote_paused_seconds.labels(state.name).set(state.paused_for(now))
        metrics.remote_paused_until.labels(state.name).set(
            state.paused_until.timestamp() if state.paused and state.paused_until else 0)


def publish_from_store(store: Store, names: Iterable[str] = ()) -> list[RemoteState]:
    """Refresh the remote gauges from the store (for a ``/metrics`` scrape in any process)."""
    return Remotes(store).states(names)
