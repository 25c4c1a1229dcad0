"""Remembering each remote's API allowance in the store, for ``status`` and ``/healthz``."""
from __future__ import annotations

from datetime import datetime

from adapters.base import Allowance
from state import Store
from state.models import ApiBudget
from state.upsert import upsert
from sync.ops import metrics


def record_allowance(store: Store, system: str, allowance: Allowance, now: datetime) -> None:
    if allowance.total:
        metrics.api_budget_remaining.labels(system, "daily").set(max(0, allowance.total - (allowance.used or 0)))
    with store.session() as session:
        upsert(session, ApiBudget, [{"system": system, "used": allowance.used, "total": allowance.total,
                                     "share": allowance.share, "paused": allowance.exhausted,
                                     "description": allowance.describe(), "updated_at": now}], ["system"],
               lambda table, new: {column: getattr(new, column) for column in
                                   ("used", "total", "share", "paused", "description", "updated_at")})
