"""The daemon as an operator meets it: real processes, real signals, real databases."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import insert, text
from sqlmodel import func, select

from state import Store
from state.models import JobRun
from sync.jobs.housekeeping import PAGE

CLOSEDLOOP = [sys.executable, "-m", "sync.cli"]
REPO = Path(__file__).resolve().parent.parent


def closedloop(*args: str, config: Path, timeout: float = 60, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([*CLOSEDLOOP, *args, "--config", str(config)], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO, **kwargs)


@pytest.fixture
def sqlite_config(write_config, tmp_path):
    return write_config(f"""
        [state]
        url = "sqlite:///{tmp_path / 'state.db'}"
        [collector]
        enabled = false
    """)


def test_run_once_exit_codes(sqlite_config, write_config, tmp_path):
    # Not migrated yet: a setup problem someone must fix → 2, with the remedy in one line.
    result = closedloop("run", "--once", config=sqlite_config)
    assert result.returncode == 2
    assert result.stderr.strip() == (f"closedloop: error: no state database at {tmp_path / 'state.db'} (is --config "
                                     "or [state] url right?): run `closedloop migrate` to create it")
    assert not (tmp_path / "state.db").exists()  # refusing did not leave an empty database behind
    assert closedloop("migrate", config=sqlite_config).returncode == 0
    # Healthy: every job ok → 0.
    result = closedloop("run", "--once", config=sqlite_config)
    assert result.returncode == 0, result.stderr
    assert "housekeeping: ok" in result.stdout
    # A job that fails → 1 and a one-line reason.
    store = Store(f"sqlite:///{tmp_path / 'state.db'}")
    with store.engine.begin() as connection:
        connection.execute(text("DROP TABLE touchpoints"))
    store.dispose()
    failing = write_config(f"""
        [state]
        url = "sqlite:///{tmp_path / 'state.db'}"
        retention_days = 30
        [collector]
        enabled = false
    """, name="failing.toml")
    result = closedloop("run", "--once", config=failing)
    assert result.returncode == 1
    [reason] = [line for line in result.stderr.splitlines() if line.startswith("closedloop: error:")]
    assert "housekeeping: OperationalError: (sqlite3.OperationalError) no such table: touchpoints" in reason
    # A bad config → 2.
    bad = write_config("[collector]\nport = 'x'\n", name="bad.toml")
    result = closedloop("run", "--once", config=bad)
    assert result.returncode == 2
    assert result.stderr.strip() == f"closedloop: error: {bad}:2: [collector] port: expected a valid integer, " \
                                    "unable to parse string as an integer"


def test_status_after_a_run(sqlite_config):
    closedloop("migrate", config=sqlite_config)
    closedloop("run", "--once", config=sqlite_config)
    result = closedloop("status", config=sqlite_config, env={**os.environ, "COLUMNS": "160"})
    assert result.returncode == 0, result.stderr
    row = next(line for line in result.stdout.splitlines() if "housekeeping" in line)
    assert "ok" in row and "s ago" in row


def _seed_old_job_runs(store: Store, count: int) -> None:
    old = datetime.now(timezone.utc) - timedelta(days=400)
    rows = [{"job": "enrich", "instance": "old", "started_at": old, "outcome": "ok",
             "records_read": 0, "records_written": 0} for _ in range(count)]
    with store.engine.begin() as connection:
        for start in range(0, count, 50_000):
            connection.execute(insert(JobRun), rows[start:start + 50_000])


def test_sigterm_mid_job_commits_whole_pages_only(sqlite_config, tmp_path):
    """SIGTERM while housekeeping deletes a large backlog: the process exits 0 promptly, the
    run is recorded as interrupted, and exactly a whole number of pages was deleted — no
    page is half-applied."""
    closedloop("migrate", config=sqlite_config)
    store = Store(f"sqlite:///{tmp_path / 'state.db'}")
    total = 100 * PAGE
    _seed_old_job_runs(store, total)
    process = subprocess.Popen([*CLOSEDLOOP, "run", "--once", "--config", str(sqlite_config)], cwd=REPO,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while True:  # wait until the job is visibly mid-way
            with store.session(readonly=True) as session:
                left = session.exec(select(func.count()).select_from(JobRun).where(JobRun.instance == "old")).one()
            if left < total - 2 * PAGE:
                break
            assert time.monotonic() < deadline, "housekeeping never started deleting"
            time.sleep(0.01)
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == 0, stderr
    assert "housekeeping: interrupted" in stdout
    with store.session(readonly=True) as session:
        left = session.exec(select(func.count()).select_from(JobRun).where(JobRun.instance == "old")).one()
        run = session.exec(select(JobRun).where(JobRun.instance != "old")).one()
    assert 0 < left < total, "the signal arrived too late to test anything"
    assert (total - left) % PAGE == 0
    assert run.outcome == "interrupted" and run.finished_at is not None
    assert run.records_written == total - left
    with store.engine.connect() as connection:
        assert connection.execute(text("PRAGMA integrity_check")).scalar() == "ok"
    store.dispose()


LOCK_PROBE = textwrap.dedent("""
    import sys, time
    from datetime import datetime, timezone
    from sqlalchemy import text
    from state import Store
    from sync.config import load_config
    from sync.jobs.base import Job, JobRunner

    class Probe(Job):
        name = "probe"
        @classmethod
        def interval_seconds(cls, config):
            return 1.0
        def run(self, ctx):
            started = datetime.now(timezone.utc)
            time.sleep(0.15)
            with ctx.store.session() as session:
                session.execute(text("INSERT INTO lock_probe (pid, started, finished) VALUES (:p, :s, :f)"),
                                {"p": int(sys.argv[2]), "s": started, "f": datetime.now(timezone.utc)})
            return ctx.result

    store = Store(sys.argv[1])
    runner = JobRunner(load_config(None, environ={}), store)
    outcomes = []
    for _ in range(12):
        outcomes.append(runner.execute(Probe(runner.config)).outcome)
        time.sleep(0.05)  # leave the other daemon a window to take its turn
    print(",".join(outcomes))
""")


@pytest.mark.postgres
def test_advisory_lock_two_processes(postgres_url, tmp_path):
    """Two daemons sharing one PostgreSQL store never run the same job at the same time."""
    store = Store(postgres_url)
    with store.engine.begin() as connection:
        connection.execute(text("CREATE TABLE lock_probe (pid int, started timestamptz, finished timestamptz)"))
    script = tmp_path / "probe.py"
    script.write_text(LOCK_PROBE)
    processes = [subprocess.Popen([sys.executable, str(script), postgres_url, str(n)], cwd=tmp_path,
                                  env={**os.environ, "PYTHONPATH": str(REPO)},
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for n in (1, 2)]
    outcomes = []
    for process in processes:
        stdout, stderr = process.communicate(timeout=120)
        assert process.returncode == 0, stderr
        outcomes.extend(stdout.strip().split(","))
    with store.engine.connect() as connection:
        runs = connection.execute(text("SELECT pid, started, finished FROM lock_probe ORDER BY started")).all()
    assert len(runs) == outcomes.count("ok") and outcomes.count("locked") > 0
    for earlier, later in zip(runs, runs[1:]):
        assert earlier.finished <= later.started, f"overlapping runs: {earlier} and {later}"
    assert {run.pid for run in runs} == {1, 2}, "both daemons should have had turns"
    store.dispose()


@pytest.mark.postgres
def test_run_once_skips_a_job_another_instance_holds(postgres_url, write_config):
    config = write_config(f"""
        [state]
        url = "{postgres_url}"
        [collector]
        enabled = false
    """)
    store = Store(postgres_url)
    with store.job_lock("housekeeping") as held:
        assert held
        result = closedloop("run", "--once", config=config)
    assert result.returncode == 0, result.stderr
    assert "housekeeping: locked" in result.stdout
    result = closedloop("run", "--once", config=config)
    assert "housekeeping: ok" in result.stdout
    store.dispose()
