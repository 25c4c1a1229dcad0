"""Errors a person can act on: one line naming what failed and where, no traceback (unless
--debug, or in the JSON log), a non-zero exit — and `check` answers within seconds."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from support import World, free_port

CLOSEDLOOP = [sys.executable, "-m", "sync.cli"]
REPO = Path(__file__).resolve().parent.parent


def closedloop(*args: str, env: dict | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([*CLOSEDLOOP, *args], capture_output=True, text=True, timeout=timeout, cwd=REPO,
                          env={**os.environ, "COLUMNS": "200", **(env or {})})


def one_error_line(result: subprocess.CompletedProcess) -> str:
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("closedloop: error: ")
    return lines[0]


def test_unreachable_postgresql(write_config):
    port = free_port()
    config = write_config(f"""
        [state]
        url = "postgresql+psycopg://closedloop@127.0.0.1:{port}/closedloop"
        [collector]
        enabled = false
    """)
    for command in (["status"], ["run", "--once"], ["migrate"]):
        result = closedloop(*command, "--config", str(config))
        assert result.returncode == 1
        line = one_error_line(result)
        assert f"cannot reach the PostgreSQL state database postgresql+psycopg://closedloop@127.0.0.1:{port}/" \
               "closedloop: " in line and "Connection refused" in line
    debug = closedloop("--debug", "status", "--config", str(config))
    assert debug.returncode == 1 and "Traceback" in debug.stderr and "OperationalError" in debug.stderr
    assert debug.stderr.strip().splitlines()[-1].startswith("closedloop: error: cannot reach the PostgreSQL")


def test_the_json_log_keeps_the_traceback(write_config):
    config = write_config(f"""
        [state]
        url = "postgresql+psycopg://closedloop:secret@127.0.0.1:{free_port()}/closedloop"
        password_env = "PGPASS_FOR_TEST"
        [logging]
        format = "json"
    """)
    result = closedloop("status", "--config", str(config), env={"PGPASS_FOR_TEST": "s3cret-value"})
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    entry = json.loads(lines[0])
    assert entry["level"] == "ERROR" and "Traceback" in entry["exception"]
    assert lines[-1].startswith("closedloop: error: cannot reach the PostgreSQL state database")
    assert "s3cret-value" not in result.stderr


def test_sqlite_that_cannot_be_written(write_config, tmp_path):
    folder = tmp_path / "a-folder"
    folder.mkdir()
    config = write_config(f"""
        [state]
        url = "sqlite:///{folder}"
    """)
    result = closedloop("migrate", "--config", str(config))
    assert result.returncode == 1
    assert one_error_line(result) == f"closedloop: error: cannot write the SQLite state database {folder}: unable to " \
                                     "open database file (the file and its folder must be writable by this user; " \
                                     "[state] url)"
    nowhere = write_config("""
        [state]
        url = "sqlite:////proc/closedloop/state.db"
    """, name="nowhere.toml")
    result = closedloop("migrate", "--config", str(nowhere))
    assert result.returncode == 1
    assert one_error_line(result).startswith("closedloop: error: cannot create the folder /proc/closedloop of the "
                                             "SQLite state database: ")
    result = closedloop("status", "--config", str(nowhere))  # a reading command never creates one
    assert result.returncode == 2
    assert one_error_line(result) == ("closedloop: error: no state database at /proc/closedloop/state.db (is --config "
                                      "or [state] url right?): run `closedloop migrate` to create it")


def test_the_readonly_message():
    import sqlite3

    from state.store import unavailable

    message = unavailable("sqlite", "/srv/closedloop.db", sqlite3.OperationalError("attempt to write a readonly database"))
    assert message == ("cannot write the SQLite state database /srv/closedloop.db: attempt to write a readonly "
                       "database (the file and its folder must be writable by this user; [state] url)")
    assert unavailable("sqlite", "x", sqlite3.OperationalError("no such table: touchpoints")) is None


@pytest.fixture
def silent_server():
    """A TCP port that accepts connections and never answers (a hung proxy, a firewall's tarpit)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    yield listener.getsockname()[1]
    listener.close()


def test_check_against_an_unreachable_salesforce_answers_within_seconds(tmp_path, silent_server):
    world = World(tmp_path)
    try:
        world.create_fields()
        for login_url, reason in ((f"https://127.0.0.1:{free_port()}", "connection refused"),
                                  (f"https://127.0.0.1:{silent_server}", "no answer within the timeout")):
            config = tmp_path / "unreachable.toml"
            config.write_text(world.config_path.read_text().replace(f'login_url = "{world.salesforce.url}"',
                                                                    f'login_url = "{login_url}"'))
            started = time.monotonic()
            result = closedloop("check", "--config", str(config), env=world.environ)
            took = time.monotonic() - started
            assert took < 10, f"check took {took:.1f}s"
            assert result.returncode == 1, result.stderr
            assert one_error_line(result) == f"closedloop: error: salesforce: cannot reach the Salesforce login at " \
                                             f"{login_url}: {reason}"
            assert "hubspot: credentials ok" in result.stdout  # the other remote was still checked
    finally:
        world.close()


def test_check_lifts_an_auth_pause_once_the_credentials_work(tmp_path):
    world = World(tmp_path)
    try:
        world.create_fields()
        world.runner.remotes.pause("salesforce", "auth", "Salesforce refused the client_credentials login")
        result = closedloop("check", "--config", str(world.config_path), env=world.environ)
        assert result.returncode == 0, result.stderr
        assert "salesforce: the credentials work again: its pause is lifted" in result.stdout
        assert not world.runner.remotes.state("salesforce").paused
    finally:
        world.close()
