"""The state store, run against SQLite and a real PostgreSQL server alike."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.exc import IntegrityError
from sqlmodel import SQLModel, select

from state import SchemaOutdated, Store
from state.models import Cursor, DeadLetter, Identity, LeadSync, OutboxEvent, Touchpoint, Visitor


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def empty_url(request, tmp_path, postgres_server_or_skip):
    """An empty database (no schema) on either backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'empty.db'}"
    return postgres_server_or_skip()


@pytest.fixture
def postgres_server_or_skip(request):
    def make():
        import psycopg
        from sqlalchemy.engine import make_url

        admin = request.getfixturevalue("postgres_server")
        name = f"closedloop_empty_{id(request)}"
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}"')
            connection.execute(f'CREATE DATABASE "{name}"')
        request.addfinalizer(lambda: _drop(admin, name))
        return make_url(admin).set(drivername="postgresql+psycopg", database=name).render_as_string(False)
    return make


def _drop(admin: str, name: str) -> None:
    import psycopg

    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_migrations_up_from_empty(empty_url):
    store = Store(empty_url)
    with pytest.raises(SchemaOutdated, match="run `closedloop migrate`"):
        store.check_schema()
    before, after = store.migrate()
    assert before is None and after == store.head_revision()
    store.check_schema()
    assert store.migrate() == (after, after)  # idempotent
    store.dispose()


def test_migrations_match_the_models(store):
    """Models and migrations never drift: autogenerate finds nothing to add or change."""
    with store.engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection, opts={"compare_type": True}),
                                SQLModel.metadata)
    assert diff == []


def test_datetimes_come_back_aware_utc(store):
    stamp = datetime(2026, 3, 1, 12, 30, 15, 123456, tzinfo=timezone(timedelta(hours=2)))
    with store.session() as session:
        session.add(Visitor(id="v1", first_seen_at=stamp, last_seen_at=stamp))
    with store.session(readonly=True) as session:
        visitor = session.get(Visitor, "v1")
    assert visitor.first_seen_at == stamp
    assert visitor.first_seen_at.tzinfo == timezone.utc


def test_naive_datetimes_are_refused(store):
    with pytest.raises(Exception, match="naive datetime"):
        with store.session() as session:
            session.add(Visitor(id="v1", first_seen_at=datetime(2026, 1, 1), last_seen_at=datetime(2026, 1, 1)))


def test_outbox_idempotency_key_is_unique(store):
    event = dict(kind="revenue", crm="salesforce", record_id="006A", event_name="purchase",
                 client_id="1.2", payload={"events": [{"name": "purchase"}]})
    with store.session() as session:
        session.add(OutboxEvent(idempotency_key="salesforce:006A:purchase", **event))
    with pytest.raises(IntegrityError):
        with store.session() as session:
            session.add(OutboxEvent(idempotency_key="salesforce:006A:purchase", **event))
    with store.session(readonly=True) as session:
        assert len(session.exec(select(OutboxEvent)).all()) == 1


def test_a_failed_unit_of_work_leaves_nothing(store):
    """A session that raises rolls back every row it wrote, cursor included."""
    with pytest.raises(RuntimeError):
        with store.session() as session:
            session.add(Cursor(crm="hubspot", stream="enrich:contacts", value="1700000000000"))
            session.add(DeadLetter(job="enrich", code="X", message="boom"))
            session.flush()
            raise RuntimeError("crash between the work and its commit")
    with store.session(readonly=True) as session:
        assert session.exec(select(Cursor)).all() == []
        assert session.exec(select(DeadLetter)).all() == []


def test_json_and_identity_round_trip(store):
    now = datetime.now(timezone.utc)
    with store.session() as session:
        session.add(LeadSync(crm="salesforce", object="Lead", record_id="00Q1", status="enriched",
                             visitor_ids=["v1", "v2"], written={"First_Click_Source__c": "google", "Visits__c": 3}))
        session.add(Identity(visitor_id="v1", kind="email_sha256", value="ab" * 32))
        session.add(Touchpoint(visitor_id="v1", kind="pageview", occurred_at=now, url="https://x/?utm_source=a",
                               utm_source="a"))
    with store.session(readonly=True) as session:
        sync = session.get(LeadSync, ("salesforce", "Lead", "00Q1"))
        assert sync.written == {"First_Click_Source__c": "google", "Visits__c": 3}
        assert sync.visitor_ids == ["v1", "v2"]
        assert session.exec(select(Touchpoint.utm_source)).one() == "a"


def test_job_lock_is_exclusive_on_postgres_and_free_on_sqlite(store):
    with store.job_lock("enrich") as first:
        assert first
        with store.job_lock("enrich") as second:
            # PostgreSQL: a second connection cannot take it; SQLite: single-daemon no-op.
            assert second is (store.dialect == "sqlite")
        with store.job_lock("revenue") as other:
            assert other
    with store.job_lock("enrich") as again:
        assert again


def test_bulk_writes_store_what_the_orm_would(store):
    """insert_rows and upsert (one JSON-array statement on SQLite) keep every value as a
    row-by-row insert would: awkward text, timestamps comparable in SQL, JSON, defaults."""
    from state.upsert import insert_rows, upsert

    stamp = datetime(2026, 3, 1, 12, 30, 15, tzinfo=timezone(timedelta(hours=2)))  # no microseconds
    awkward = 'quote " back\\slash \u00e9\U0001F600 \n [1,2] {"a":1} \u2028'
    insert_rows_input = [{"visitor_id": f"v{i}", "kind": "pageview", "occurred_at": stamp + timedelta(seconds=i),
                          "url": awkward, "utm_source": None if i else "0123", "received_at": stamp}
                         for i in range(3)]
    with store.session() as session:
        insert_rows(session, Touchpoint, insert_rows_input)
        upsert(session, LeadSync, [{"crm": "hubspot", "object": "contacts", "record_id": "1", "status": "pending",
                                    "visitor_ids": ["v0", awkward], "written": {"n": 1.5, "s": awkward}}],
               ["crm", "object", "record_id"])
    with store.session(readonly=True) as session:
        rows = session.exec(select(Touchpoint).order_by(Touchpoint.id)).all()
        assert [(row.visitor_id, row.url, row.utm_source, row.occurred_at) for row in rows] == \
            [(f"v{i}", awkward, None if i else "0123", stamp + timedelta(seconds=i)) for i in range(3)]
        assert session.exec(select(Touchpoint.visitor_id).where(Touchpoint.occurred_at == stamp)).all() == ["v0"]
        assert session.exec(select(Touchpoint.visitor_id).where(Touchpoint.occurred_at > stamp)).all() == ["v1", "v2"]
        sync = session.get(LeadSync, ("hubspot", "contacts", "1"))
        assert sync.visitor_ids == ["v0", awkward] and sync.written == {"n": 1.5, "s": awkward}
        assert sync.first_seen_at.tzinfo == timezone.utc  # a default the rows left out


def test_upsert_applies_conflicting_rows_in_order(store):
    from state.upsert import greatest, upsert

    early, late = datetime(2026, 1, 1, tzinfo=timezone.utc), datetime(2026, 2, 1, tzinfo=timezone.utc)
    with store.session() as session:
        session.add(Visitor(id="old", first_seen_at=early, last_seen_at=early, ga_client_id="1.1"))
    rows = [{"id": "old", "first_seen_at": late, "last_seen_at": late, "ga_client_id": "2.2"},
            {"id": "new", "first_seen_at": early, "last_seen_at": early, "ga_client_id": "3.3"},
            {"id": "old", "first_seen_at": early, "last_seen_at": early, "ga_client_id": "4.4"}]  # same call
    with store.session() as session:
        upsert(session, Visitor, rows, ["id"], lambda table, new: {
            "last_seen_at": greatest(session, table.last_seen_at, new.last_seen_at),
            "ga_client_id": new.ga_client_id})
        upsert(session, Visitor, [{"id": "new", "first_seen_at": late, "last_seen_at": late}], ["id"])  # ignored
    with store.session() as session:  # keys unique within the call: one statement on both databases
        upsert(session, Visitor, [{"id": "old", "first_seen_at": late, "last_seen_at": early, "ga_client_id": "5.5"},
                                  {"id": "third", "first_seen_at": late, "last_seen_at": late}], ["id"],
               lambda table, new: {"last_seen_at": greatest(session, table.last_seen_at, new.last_seen_at),
                                   "ga_client_id": new.ga_client_id})
        with pytest.raises(ValueError, match="naive datetime"):
            upsert(session, Visitor, [{"id": "naive", "first_seen_at": datetime(2026, 1, 1),
                                       "last_seen_at": datetime(2026, 1, 1)}], ["id"])
    with store.session(readonly=True) as session:
        old, new = session.get(Visitor, "old"), session.get(Visitor, "new")
    assert (old.first_seen_at, old.last_seen_at, old.ga_client_id) == (early, late, "5.5")
    assert (new.first_seen_at, new.ga_client_id) == (early, "3.3")
    with store.session(readonly=True) as session:
        assert session.get(Visitor, "third").last_seen_at == late and session.get(Visitor, "naive") is None
