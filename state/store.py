"""The state store: one engine, transactional sessions, migrations and per-job locks.

SQLite is the embedded default (WAL mode, so the collector can write while a job reads);
PostgreSQL is for production and for several daemons sharing one database, where each job
takes a PostgreSQL advisory lock so exactly one instance runs it at a time.
"""
from __future__ import annotations

import hashlib
import logging
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import event, text
from sqlalchemy.engine import Connection, Engine, make_url
from sqlmodel import Session, create_engine

import state.models  # noqa: F401  (registers the tables on SQLModel.metadata)

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


class SchemaOutdated(Exception):
    """The database schema is older (or newer) than this version of closedloop expects."""


class StateUnavailable(Exception):
    """The state database cannot be reached or written; the message says which and where."""


def _first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0].strip()


def unavailable(dialect: str, where: str, error: BaseException) -> str | None:
    """A one-line reason when ``error`` means the database itself is out of reach (not a bad
    query): connection refused, unknown host, bad password, missing database; a SQLite file or
    folder that cannot be opened or written. None for anything else."""
    text = _first_line(error)
    lowered = str(error).lower()
    if dialect == "sqlite":
        if "readonly database" in lowered or "unable to open database file" in lowered or \
                "disk i/o error" in lowered:
            return (f"cannot write the SQLite state database {where}: {text} (the file and its folder must be "
                    "writable by this user; [state] url)")
        return None
    if type(error).__name__ == "OperationalError" and any(sign in lowered for sign in (
            "connection", "could not translate host", "timeout expired", "password authentication", "does not exist",
            "no pg_hba.conf entry", "server closed", "name or service not known", "role")):
        reason = text.split(": ", 1)[-1] if text.startswith("connection failed") else text
        return f"cannot reach the PostgreSQL state database {where}: {reason} (is the server up, and is [state] url right?)"
    return None


class Store:
    """Access to the state database.

    ``session()`` is a unit of work: committed when the block ends, rolled back on any
    exception, so a job's effects and the cursor that records them land together or not at
    all.
    """

    def __init__(self, url: str, *, echo: bool = False, name: str = "closedloop", create: bool = True) -> None:
        """``name`` labels the connections on PostgreSQL (``application_name`` in
        ``pg_stat_activity``), so a DBA can tell which instance holds what. ``create=False``
        refuses a SQLite file that does not exist yet instead of creating an empty one (commands
        that only read must not leave a database behind in a wrong folder)."""
        self.url = make_url(url)
        self.dialect = self.url.get_backend_name()
        if self.dialect == "sqlite":
            database = self.url.database
            if not create and database not in (None, "", ":memory:") and not Path(database).exists():
                raise SchemaOutdated(f"no state database at {database} (is --config or [state] url right?): "
                                     "run `closedloop migrate` to create it")
            self.engine = _sqlite_engine(url, echo)
        else:
            # A daemon runs its jobs in parallel, each holding a lock connection besides its
            # sessions (and the enrich pipeline's threads theirs): up to 20, 5 kept when idle.
            self.engine = create_engine(url, echo=echo, pool_pre_ping=True, pool_size=5, max_overflow=15,
                                        connect_args={"connect_timeout": 10, "application_name": name[:63]})
        event.listen(self.engine, "handle_error", self._unavailable)

    def _unavailable(self, context) -> None:
        """Turn "the database is out of reach" into :class:`StateUnavailable` with one line naming
        it (SQLAlchemy's own error is kept as the cause, for tracebacks under --debug)."""
        where = self.url.database if self.dialect == "sqlite" else self.safe_url
        message = unavailable(self.dialect, str(where), context.original_exception)
        if message:
            raise StateUnavailable(message) from context.sqlalchemy_exception

    @property
    def safe_url(self) -> str:
        return self.url.render_as_string(hide_password=True)

    @contextmanager
    def session(self, *, readonly: bool = False) -> Iterator[Session]:
        """A transaction. On SQLite, writers take the write lock up front (BEGIN IMMEDIATE) so
        two writers queue on the busy timeout instead of failing mid-transaction."""
        with Session(self.engine, expire_on_commit=False) as session:
            if self.dialect == "sqlite":
                session.connection(execution_options={"sqlite_begin": "DEFERRED" if readonly else "IMMEDIATE"})
            try:
                yield session
                if not readonly:
                    session.commit()
                # A read-only session just closes: its transaction is rolled back without
                # expiring the objects it loaded, so callers can keep using them.
            except BaseException:
                session.rollback()
                raise

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """A write transaction on a bare connection, without an ORM session: for bulk statements
        run many times a second (the collector's writer), where a session's bookkeeping costs more
        than the statements. Same locking as :meth:`session` (BEGIN IMMEDIATE on SQLite)."""
        with self.engine.connect() as connection:
            if self.dialect == "sqlite":
                connection = connection.execution_options(sqlite_begin="IMMEDIATE")
            with connection.begin():
                yield connection

    # -- migrations -------------------------------------------------------------------

    def _alembic(self, connection) -> AlembicConfig:
        config = AlembicConfig()
        config.set_main_option("script_location", str(MIGRATIONS_DIR))
        config.attributes["connection"] = connection
        return config

    def head_revision(self) -> str:
        return ScriptDirectory.from_config(self._alembic(None)).get_current_head()

    def current_revision(self) -> str | None:
        with self.engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()

    def migrate(self) -> tuple[str | None, str]:
        """Bring the schema up to date; returns (revision before, revision after)."""
        with self.job_lock("migrate", wait=True):
            before = self.current_revision()
            with self.engine.begin() as connection:
                command.upgrade(self._alembic(connection), "head")
            after = self.current_revision()
        if before != after:
            log.info("migrated state schema from %s to %s", before or "empty", after)
        return before, after

    def check_schema(self) -> None:
        """Refuse to run against a schema this code was not written for."""
        current, head = self.current_revision(), self.head_revision()
        if current == head:
            return
        if current is None:
            raise SchemaOutdated(f"the state database {self.safe_url} has no closedloop schema yet: "
                                 "run `closedloop migrate`")
        scripts = ScriptDirectory.from_config(self._alembic(None))
        known = {rev.revision for rev in scripts.walk_revisions()}
        if current not in known:
            raise SchemaOutdated(f"the state database is at schema {current}, which this closedloop version "
                                 "does not know (written by a newer version?)")
        raise SchemaOutdated(f"the state database is at schema {current} but this version needs {head}: "
                             "run `closedloop migrate`")

    # -- locks ------------------------------------------------------------------------

    @contextmanager
    def job_lock(self, name: str, *, wait: bool = False) -> Iterator[bool]:
        """Hold the cluster-wide lock for ``name`` while the block runs; yields whether it was taken.

        PostgreSQL: a session-level advisory lock on a dedicated connection, released when the
        block ends (or when the process dies and its connection drops). SQLite: a single
        daemon owns the file, so this is a no-op that always succeeds.
        """
        if self.dialect != "postgresql":
            yield True
            return
        key = lock_key(name)
        connection = self.engine.connect()
        try:
            if wait:
                connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": key})
                acquired = True
            else:
                acquired = bool(connection.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": key}).scalar())
            connection.commit()
            try:
                yield acquired
            finally:
                if acquired:
                    connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
                    connection.commit()
        finally:
            connection.close()

    def sqlite_maintenance(self) -> None:
        """Refresh SQLite's planner statistics and fold the WAL back into the database file.

        PRAGMAs like these must run outside a transaction, hence the raw connection."""
        raw = self.engine.raw_connection()
        try:
            raw.driver_connection.execute("PRAGMA optimize")
            raw.driver_connection.execute("PRAGMA wal_checkpoint(PASSIVE)")
        finally:
            raw.close()

    def dispose(self) -> None:
        self.engine.dispose()


def lock_key(name: str) -> int:
    """A stable signed 64-bit advisory lock key for a job name."""
    digest = hashlib.blake2b(f"closedloop:{name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def _sqlite_engine(url: str, echo: bool) -> Engine:
    parsed = make_url(url)
    if parsed.database and parsed.database != ":memory:":
        folder = Path(parsed.database).parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StateUnavailable(f"cannot create the folder {folder} of the SQLite state database: "
                                   f"{exc.strerror or exc} ([state] url)") from exc
    engine = create_engine(url, echo=echo, connect_args={"timeout": 30, "check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:
        # Let SQLAlchemy, not the driver, decide when transactions begin (see "begin" below).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection) -> None:
        mode = connection.get_execution_options().get("sqlite_begin", "DEFERRED")
        connection.exec_driver_sql(f"BEGIN {mode}")

    return engine
