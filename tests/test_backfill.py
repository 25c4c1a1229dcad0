"""``closedloop backfill``: records the CRM already held before closedloop arrived, resumably."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from click.testing import CliRunner
from sqlmodel import select
from test_revenue import browse

from state.models import Cursor
from sync.cli import main
from sync.jobs.backfill import Backfill
from sync.jobs.base import StopRequested

OLD = datetime.now(timezone.utc) - timedelta(days=40)


def old_contacts(world, count):
    """Contacts created and last touched 40 days ago, each with a web journey."""
    for n in range(count):
        browse(world, f"old{n:05d}", f"{7000 + n}.1690000000", "https://www.example.com/?utm_source=google&utm_medium=cpc",
               email=f"old{n}@hs.example", minutes_ago=41 * 24 * 60)
    return world.hubspot.seed("contacts", [{"email": f"old{n}@hs.example", "createdate": OLD.isoformat(),
                                            "lastmodifieddate": (OLD + timedelta(seconds=n)).isoformat()}
                                           for n in range(count)])


def sources(world, ids):
    return [world.hubspot.record("contacts", i).get("cl_first_click_source") for i in ids]


def test_the_daemon_leaves_old_records_and_a_backfill_enriches_them_resuming_after_a_stop(world):
    ids = old_contacts(world, 450)  # three search pages of 200
    world.run("enrich")
    assert set(sources(world, ids)) == {None}  # the daemon starts from now, not from the beginning

    first = Backfill(world.config, world.store, world.connections, "hubspot")
    pages = []

    def stop_after_first_page(object_name, records):
        pages.append(records)
        first.stop.set()  # as Ctrl-C does: finish this page, then stop

    with pytest.raises(StopRequested):
        first.run(on_page=stop_after_first_page)
    assert pages == [200]
    assert sources(world, ids).count("google") == 200
    with world.store.session(readonly=True) as session:
        assert session.get(Cursor, ("hubspot", "backfill:contacts")) is not None

    totals = {}
    second = Backfill(world.config, world.store, world.connections, "hubspot")
    assert second.resumed and second.since == first.since
    result = second.run(on_start=lambda name, total: totals.setdefault(name, total))
    # Left: 250 untouched records, plus the 200 the first run wrote (its writes moved their
    # last-modified date past the cursor); those compare equal and are not written again.
    assert totals["contacts"] == 450 and result.read == 450 and result.written == 250
    assert set(sources(world, ids)) == {"google"}
    with world.store.session(readonly=True) as session:  # done: the next backfill starts over
        assert session.exec(select(Cursor).where(Cursor.stream.startswith("backfill:"))).all() == []
    assert world.run("enrich").result.records_written == 0  # the daemon's own cursor never moved back


def test_the_backfill_command(world):
    ids = old_contacts(world, 30)
    runner = CliRunner()
    result = runner.invoke(main, ["backfill", "--crm", "hubspot", "--since", (OLD - timedelta(days=1)).strftime(
        "%Y-%m-%d"), "--config", str(world.config_path)], env=world.environ)
    assert result.exit_code == 0, result.output
    assert "Starting the hubspot backfill" in result.output and "backfill done: read 30 record(s), wrote 30" \
        in result.output
    assert set(sources(world, ids)) == {"google"}
    result = runner.invoke(main, ["backfill", "--crm", "salesforce", "--config", str(world.config_path)],
                           env=world.environ)
    assert result.exit_code == 0 and "wrote 0" in result.output


def test_an_unfinished_backfill_from_another_date_needs_restart(world):
    Backfill(world.config, world.store, world.connections, "hubspot", since=datetime(2026, 1, 1, tzinfo=timezone.utc))
    result = CliRunner().invoke(main, ["backfill", "--crm", "hubspot", "--since", "2025-06-01", "--config",
                                       str(world.config_path)], env=world.environ)
    assert result.exit_code == 2 and "a hubspot backfill from 2026-01-01 is unfinished" in result.output
    result = CliRunner().invoke(main, ["backfill", "--crm", "hubspot", "--since", "2025-06-01", "--restart",
                                       "--config", str(world.config_path)], env=world.environ)
    assert result.exit_code == 0 and "since 2025-06-01" in result.output
