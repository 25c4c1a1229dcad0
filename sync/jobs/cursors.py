"""Poll cursors: where a job's next read of a CRM stream starts, and moving that point on.

A cursor moves in the same transaction as the work it covers, so it never passes work that was
not committed. Each read starts the CRM's ``lookback`` before the cursor (rows committed late
under an older stamp) and ends its ``lag`` before now (HubSpot's search index trails its writes).
"""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlmodel import Session

from state.models import Cursor
from state.upsert import upsert

if TYPE_CHECKING:
    from sync.jobs.base import JobContext
    from sync.jobs.enrich import CrmProfile

INITIAL_WINDOW = timedelta(days=1)  # how far back the first poll of a stream reads


def poll_window(ctx: JobContext, crm: str, profile: CrmProfile, stream: str, now: datetime, *,
                start: datetime | None = None) -> tuple[datetime, datetime]:
    """``(since, until)`` of the next poll of ``stream``: from the stored cursor less the
    lookback (else ``start``, else ``INITIAL_WINDOW`` ago) to now less the lag."""
    with ctx.store.session(readonly=True) as session:
        cursor = session.get(Cursor, (crm, stream))
    since = datetime.fromisoformat(cursor.value) - profile.lookback(ctx.config, crm) if cursor \
        else start or now - INITIAL_WINDOW
    return since, now - profile.lag(ctx.config, crm)


def advance_cursor(session: Session, crm: str, stream: str, value: datetime, now: datetime) -> None:
    """Move ``stream``'s cursor to ``value``, in ``session``'s transaction."""
    upsert(session, Cursor, [{"crm": crm, "stream": stream, "value": value.isoformat(), "updated_at": now}],
           ["crm", "stream"], lambda table, new: {"value": new.value, "updated_at": new.updated_at})
