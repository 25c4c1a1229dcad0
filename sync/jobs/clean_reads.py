"""What a CRM returns is outside data too: it is made valid text before any job stores it.

A deal named with a NUL, or a lead status holding a lone surrogate (a CRM stores what its
users and integrations typed), would otherwise reach the store: PostgreSQL refuses such a row
and with it the whole page (the job would fail on it every run); SQLite would keep invalid
UTF-8 that every later read fails on. :class:`CleanReads` wraps an adapter and passes each
value it reads through the collector's normalisation (:func:`sync.capture.text.clean`); the
adapters themselves know nothing of closedloop and stay as they are.
"""
from __future__ import annotations

from typing import Any

from sync.capture.text import clean

PAGED_READS = frozenset({"iter_changed", "iter_deals", "iter_lead_stages", "iter_contact_stages"})
READS = frozenset({"records_by_id", "people_of_deals", "query", "update_records"})  # results carry CRM messages


class CleanReads:
    """An adapter whose reads come back as valid text; everything else passes through."""

    def __init__(self, adapter: Any) -> None:
        self.adapter = adapter

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self.adapter, name)
        if name in PAGED_READS:
            return lambda *args, **kwargs: (clean(page) for page in attribute(*args, **kwargs))
        if name in READS:
            return lambda *args, **kwargs: clean(attribute(*args, **kwargs))
        return attribute
