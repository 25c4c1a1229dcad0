"""SIGKILL between send and mark-sent: the platform has the conversions, closedloop does not know it.

``closedloop run --once`` runs as a real subprocess. The emulator processes its request and then
holds the answer until the test has killed the daemon with SIGKILL, so the kill lands exactly in
the gap (the rows stay ``sending``). The next run finds them and resends them with the same keys
inside each platform's de-duplication window: Google restates the same transaction ids, Meta
de-duplicates the event ids. Each stage ends as exactly one conversion on each platform.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from datetime import timedelta

import pytest
from sqlmodel import select

from ads_support import AdsWorld, arrive_from_ad
from state.models import OutboxEvent

pytestmark = pytest.mark.slow


def hold_answers(sandbox, handler_name: str, module):
    """Let ``sandbox`` process requests to ``handler_name`` but keep each answer until ``release`` is set."""
    arrived, release = threading.Event(), threading.Event()
    original = getattr(sandbox, handler_name)

    def held(request):
        response = original(request)
        arrived.set()
        release.wait(timeout=60)
        return response

    setattr(sandbox, handler_name, held)
    sandbox.router = module.build_router(sandbox)
    return arrived, release


def killed_in_flight(world, sandbox, handler_name, module) -> None:
    arrived, release = hold_answers(sandbox, handler_name, module)
    with subprocess.Popen([sys.executable, "-m", "sync.cli", "run", "--once", "--config", str(world.config_path)],
                          env={**os.environ, **world.environ}, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL) as process:
        try:
            assert arrived.wait(timeout=120), "the daemon never sent its request"
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=30)
        finally:
            release.set()
    setattr(sandbox, handler_name, getattr(type(sandbox), handler_name).__get__(sandbox))
    sandbox.router = module.build_router(sandbox)


def test_sigkill_between_send_and_mark_sent_never_duplicates_a_conversion(tmp_path):
    from sandbox.google_ads import app as google_app
    from sandbox.meta import app as meta_app

    world = AdsWorld(tmp_path)
    try:
        world.create_fields()
        leads = []
        for n in range(3):
            at = world.clock.now() - timedelta(days=2)
            world.google.record_click(at=at, gclid=f"Cj0-kill-{n}")
            world.meta.record_click(f"IwAR-kill-{n}", at=at)
            arrive_from_ad(world, f"killvisitor{n:03d}", at=at, click_ids={"gclid": f"Cj0-kill-{n}",
                                                                           "fbclid": f"IwAR-kill-{n}"},
                           email=f"kill{n}@example.org")
            leads.append(world.salesforce.create("Lead", {"LastName": f"K{n}", "Company": "K",
                                                          "Email": f"kill{n}@example.org"}))
        world.run("enrich")
        for lead in leads:
            world.salesforce.update("Lead", lead, {"Status": "Qualified"})

        killed_in_flight(world, world.google, "handle_ingest", google_app)  # Google has them; closedloop died
        with world.store.session(readonly=True) as session:
            stuck = session.exec(select(OutboxEvent).where(OutboxEvent.destination == "google_ads")).all()
        assert {event.status for event in stuck} == {"sending"} and len(world.google.conversions()) == 3

        killed_in_flight(world, world.meta, "handle_events", meta_app)  # the same for Meta, on the next run
        assert len(world.meta.events()) == 3

        world.run("conversions")  # recovers both: resent with the same keys
        world.run("conversions")
        google = world.google.conversions()
        assert sorted(c["transaction_id"] for c in google) == sorted(f"salesforce:{lead}:qualify_lead" for lead in leads)
        assert all(adjustment["value_before"] == adjustment["value_after"]
                   for c in google for adjustment in c["adjustments"])  # a resend restates nothing
        counted = [e["event_id"] for e in world.meta.events() if e["counted"]]
        assert sorted(counted) == sorted(f"salesforce:{lead}:qualify_lead" for lead in leads)
        assert len(world.meta.events()) == 6  # each resent once, and de-duplicated by Meta
        with world.store.session(readonly=True) as session:
            statuses = {e.status for e in session.exec(select(OutboxEvent).where(
                OutboxEvent.destination.in_(("google_ads", "meta")))).all()}
        assert statuses == {"sent"}
    finally:
        world.close()
