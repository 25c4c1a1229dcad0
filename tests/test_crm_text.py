"""Values read back from a CRM are made valid text before they reach the store, on both stores."""
from __future__ import annotations

import pytest
from sqlmodel import select

from state.models import DealRecord, OutboxEvent
from support import World
from test_revenue import browse


@pytest.fixture
def world(tmp_path, store_url):
    world = World(tmp_path, state_url=store_url)
    world.create_fields()
    yield world
    world.close()


def test_nul_and_lone_surrogates_from_the_crm_are_stored_as_valid_text(world):
    """A deal name with a NUL and a lone surrogate used to make PostgreSQL refuse the revenue
    job's page on every run (and SQLite store invalid UTF-8): it is stored cleaned, and the
    deal's purchase and stage events go out."""
    browse(world, "crmtext001", "8001.1700000000", "https://www.example.com/?utm_source=google&utm_medium=cpc",
           email="text@hs.example")
    contact = world.hubspot.create("contacts", {"email": "text@hs.example"})
    world.run("enrich")
    deal = world.hubspot.create("deals", {"dealname": "Big\x00 deal \ud800 \u202eok", "amount": "300"})
    world.hubspot.associate(deal, contact)
    world.hubspot.update("deals", deal, {"dealstage": "closedwon"})
    world.run("revenue")
    with world.store.session(readonly=True) as session:
        mirrored = session.get(DealRecord, ("hubspot", deal))
        events = session.exec(select(OutboxEvent)).all()
    assert mirrored.name == "Big deal \ufffd \u202eok"
    assert [event.event_name for event in events] == ["purchase"] and events[0].status == "sent"
