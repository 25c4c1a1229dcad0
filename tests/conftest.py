"""Shared fixtures: state stores on SQLite and on a real PostgreSQL server, config files.

PostgreSQL: ``CLOSEDLOOP_TEST_POSTGRES_URL`` points at an existing server (a database the
tests may create databases on); otherwise a private cluster is created with the server
binaries of Debian's ``postgresql`` package on an ephemeral loopback port and removed at the
end. Without binaries the PostgreSQL tests are skipped, unless
``CLOSEDLOOP_REQUIRE_POSTGRES=1`` (set by ``.ci/run``) turns that into a failure.
"""
from __future__ import annotations

import glob
import itertools
import os
import shutil
import subprocess
import tempfile
import textwrap
from datetime import datetime, timezone
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import make_url

from state import Store
from support import CHROMIUM_ARGS, free_port

REPO = Path(__file__).resolve().parent.parent


def _pg_bindir() -> Path | None:
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    for candidate in candidates:
        if Path(candidate, "initdb").exists():
            return Path(candidate)
    found = shutil.which("initdb")
    return Path(found).parent if found else None


def _as_postgres_user(command: list[str]) -> list[str]:
    # initdb and postgres refuse to run as root.
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


@pytest.fixture(scope="session")
def postgres_server():
    """Admin URL (psycopg form, no driver suffix) of a running PostgreSQL server."""
    if os.environ.get("CLOSEDLOOP_TEST_POSTGRES_URL"):
        yield os.environ["CLOSEDLOOP_TEST_POSTGRES_URL"]
        return
    bindir = _pg_bindir()
    if bindir is None:
        message = "PostgreSQL server binaries not found (apt-get install postgresql)"
        if os.environ.get("CLOSEDLOOP_REQUIRE_POSTGRES") == "1":
            pytest.fail(message)
        pytest.skip(message)
    # Not under pytest's tmp dir: that is private to root, and the server runs as postgres.
    root = Path(tempfile.mkdtemp(prefix="closedloop-pg-"))
    data, sockets = root / "data", root / "sockets"
    data.mkdir()
    sockets.mkdir()
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
        shutil.chown(data, "postgres")
        shutil.chown(sockets, "postgres")
        os.chmod(root, 0o755)
    subprocess.run(_as_postgres_user([str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust",
                                      "--encoding=UTF8", "--no-sync"]), check=True, capture_output=True)
    port = free_port()
    options = f"-p {port} -k {sockets} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off " \
              "-c full_page_writes=off -c max_connections=200"
    subprocess.run(_as_postgres_user([str(bindir / "pg_ctl"), "-D", str(data), "-o", options, "-l",
                                      str(root / "server.log"), "-w", "start"]), check=True, capture_output=True)
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(_as_postgres_user([str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"]),
                       capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


_database_numbers = itertools.count(1)


@pytest.fixture(scope="session")
def postgres_template(postgres_server) -> str:
    """A database migrated to the current schema, copied for each test (much faster than
    migrating each time)."""
    name = f"closedloop_template_{os.getpid()}"
    with psycopg.connect(postgres_server, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        admin.execute(f'CREATE DATABASE "{name}"')
    url = make_url(postgres_server).set(drivername="postgresql+psycopg", database=name)
    store = Store(url.render_as_string(hide_password=False))
    store.migrate()
    store.dispose()
    return name


@pytest.fixture
def postgres_url(postgres_server, postgres_template) -> str:
    """A fresh, migrated PostgreSQL database for one test."""
    name = f"closedloop_test_{os.getpid()}_{next(_database_numbers)}"
    with psycopg.connect(postgres_server, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{postgres_template}"')
    url = make_url(postgres_server).set(drivername="postgresql+psycopg", database=name)
    yield url.render_as_string(hide_password=False)
    with psycopg.connect(postgres_server, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    """A fresh, migrated SQLite database for one test."""
    url = f"sqlite:///{tmp_path / 'state' / 'closedloop.db'}"
    store = Store(url)
    store.migrate()
    store.dispose()
    return url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request) -> str:
    """The same test against both stores."""
    return request.getfixturevalue(f"{request.param}_url")


@pytest.fixture
def store(store_url):
    store = Store(store_url)
    yield store
    store.dispose()


@pytest.fixture
def write_config(tmp_path):
    """Write a closedloop.toml (dedented) into a temp dir and return its path."""
    def write(text: str, name: str = "closedloop.toml") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        return path
    return write


@pytest.fixture(scope="session")
def browser():
    """Debian's headless Chromium driven by Playwright (no browser download)."""
    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    if executable is None:
        message = "Chromium not found (apt-get install chromium)"
        if os.environ.get("CLOSEDLOOP_REQUIRE_BROWSER") == "1":
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def ga4_sandbox():
    """A GA4 emulator on an ephemeral port with a frozen clock."""
    from sandbox.clock import Clock
    from sandbox.ga4 import GA4Sandbox

    sandbox = GA4Sandbox(clock=Clock(frozen_at=datetime(2026, 11, 20, 12, 0, tzinfo=timezone.utc)))
    sandbox.start()
    yield sandbox
    sandbox.stop()


@pytest.fixture
def salesforce_sandbox(tmp_path):
    """A Salesforce emulator over HTTPS on an ephemeral port with a frozen clock."""
    from sandbox.clock import Clock
    from sandbox.salesforce import SalesforceSandbox

    sandbox = SalesforceSandbox(data_dir=tmp_path / "salesforce",
                                clock=Clock(frozen_at=datetime(2026, 11, 20, 12, 0, tzinfo=timezone.utc)))
    sandbox.start()
    yield sandbox
    sandbox.stop()


@pytest.fixture
def hubspot_sandbox():
    """A HubSpot emulator on an ephemeral port with a frozen clock."""
    from sandbox.clock import Clock
    from sandbox.hubspot import HubSpotSandbox

    sandbox = HubSpotSandbox(clock=Clock(frozen_at=datetime(2026, 11, 20, 12, 0, tzinfo=timezone.utc)))
    sandbox.start()
    yield sandbox
    sandbox.stop()


@pytest.fixture
def world(tmp_path):
    """The three emulators, a migrated SQLite store, a config and the CRM fields (``support.World``).
    A module that needs something else defines its own ``world``."""
    from support import World

    world = World(tmp_path)
    world.create_fields()
    yield world
    world.close()


@pytest.fixture
def ads(tmp_path):
    """The sandbox suite with the Google Ads and Meta emulators on one movable clock, fields created
    (``tests/ads_support.py``)."""
    from ads_support import AdsWorld

    world = AdsWorld(tmp_path)
    try:
        world.create_fields()
        yield world
    finally:
        world.close()
