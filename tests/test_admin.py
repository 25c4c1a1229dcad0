"""The admin endpoints (/healthz, /metrics): on their own listener, behind a bearer token, and
the collector's writer health in them."""
from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from sqlmodel import select
from starlette.testclient import TestClient

from state import Store
from state.models import Touchpoint
from support import DESKTOP_UA, free_port
from sync.capture.app import create_app
from sync.config import load_config
from test_collector import SITE, beacon

REPO = Path(__file__).resolve().parent.parent


def wait_until_answering(url: str, process: subprocess.Popen, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()[1]
        try:
            requests.get(url, timeout=1)
            return
        except requests.ConnectionError:
            time.sleep(0.1)
    raise AssertionError(f"{url} never answered")


@pytest.fixture
def migrated(tmp_path):
    url = f"sqlite:///{tmp_path / 'state.db'}"
    store = Store(url)
    store.migrate()
    store.dispose()
    return url


@pytest.mark.parametrize("command", [["collector"], ["run"]])
def test_admin_endpoints_on_their_own_address_behind_a_token(write_config, migrated, command):
    """Only /t.js and /collect on the public port; /healthz and /metrics on the admin port,
    and only with the bearer token (from the environment, never the file)."""
    public, admin = free_port(), free_port()
    config = write_config(f"""
        [state]
        url = "{migrated}"
        [collector]
        port = {public}
        allowed_origins = ["{SITE}"]
        [admin]
        port = {admin}
        token_env = "TEST_ADMIN_TOKEN"
    """)
    process = subprocess.Popen([sys.executable, "-m", "sync.cli", *command, "--config", str(config)], cwd=REPO,
                               env={**os.environ, "TEST_ADMIN_TOKEN": "s3cret-token"}, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        wait_until_answering(f"http://127.0.0.1:{admin}/healthz", process)
        wait_until_answering(f"http://127.0.0.1:{public}/t.js", process)
        base, admin_base = f"http://127.0.0.1:{public}", f"http://127.0.0.1:{admin}"
        assert requests.get(f"{base}/t.js", timeout=5).status_code == 200
        assert requests.post(f"{base}/collect", data=json.dumps(beacon()), timeout=5, headers={
            "Content-Type": "text/plain", "Origin": SITE, "User-Agent": DESKTOP_UA}).status_code == 204
        assert requests.get(f"{base}/healthz", timeout=5).status_code == 404
        assert requests.get(f"{base}/metrics", timeout=5).status_code == 404
        for path in ("/healthz", "/metrics"):
            refused = requests.get(admin_base + path, timeout=5)
            assert refused.status_code == 401 and refused.headers["www-authenticate"].startswith("Bearer")
            wrong = requests.get(admin_base + path, headers={"Authorization": "Bearer nope"}, timeout=5)
            assert wrong.status_code == 401
        authorised = {"Authorization": "Bearer s3cret-token"}
        health = requests.get(f"{admin_base}/healthz", headers=authorised, timeout=5)
        assert health.status_code == 200
        assert health.json()["writer"]["healthy"] is True and health.json()["writer"]["rows_stored"] == 1
        scrape = requests.get(f"{admin_base}/metrics", headers=authorised, timeout=5).text
        assert 'closedloop_collector_requests_total{outcome="accepted"} 1.0' in scrape
        assert "closedloop_collector_oldest_unwritten_seconds" in scrape
    finally:
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=60)
    assert "s3cret-token" not in out + err


def test_a_token_named_but_not_set_stops_the_collector_at_start(write_config, migrated):
    config = write_config(f'[state]\nurl = "{migrated}"\n[admin]\ntoken_env = "TEST_ADMIN_TOKEN_UNSET"\n')
    result = subprocess.run([sys.executable, "-m", "sync.cli", "collector", "--config", str(config)], cwd=REPO,
                            capture_output=True, text=True, timeout=60,
                            env={k: v for k, v in os.environ.items() if k != "TEST_ADMIN_TOKEN_UNSET"})
    assert result.returncode == 2
    assert "[admin] token_env: environment variable TEST_ADMIN_TOKEN_UNSET is not set" in result.stderr


def test_healthz_is_503_while_the_writer_cannot_commit(write_config, migrated, tmp_path):
    """A database that does not take writes (here: another process holds SQLite's write lock):
    the request gets 503 after store_timeout_seconds instead of a false 204, /healthz says the
    writer is behind, and once the lock is gone the queued beacon is stored and health is back."""
    config = load_config(write_config(f"""
        [state]
        url = "{migrated}"
        [collector]
        allowed_origins = ["{SITE}"]
        store_timeout_seconds = 0.5
        unhealthy_write_delay_seconds = 0.3
    """), environ={})
    store = Store(config.database_url)
    blocker = sqlite3.connect(str(tmp_path / "state.db"), isolation_level=None)
    try:
        with TestClient(create_app(config, store), headers={"User-Agent": DESKTOP_UA}) as client:
            blocker.execute("BEGIN EXCLUSIVE")
            response = client.post("/collect", content=json.dumps(beacon()),
                                   headers={"Content-Type": "text/plain", "Origin": SITE})
            assert response.status_code == 503 and response.json() == {"error": "the store is not answering; "
                                                                                 "retry later"}
            health = client.get("/healthz")
            assert health.status_code == 503
            assert health.json()["status"] == "unhealthy" and health.json()["failing"] == ["writer"]
            assert health.json()["writer"]["queue_depth"] == 1
            assert health.json()["writer"]["oldest_unwritten_seconds"] >= 0.3
            blocker.execute("ROLLBACK")
            assert client.app.state.writer.flush(timeout=60)
            assert client.get("/healthz").status_code == 200
    finally:
        blocker.close()
    with store.session(readonly=True) as session:
        assert len(session.exec(select(Touchpoint)).all()) == 1  # the 503'd beacon was kept, then stored
    store.dispose()
