"""Injected failures: what goes wrong, on which requests, how many times.

A test injects a fault before exercising the daemon; the next ``times`` matching requests fail
that way, faults being consumed in the order they were injected. Kinds and what they produce
(wire shapes from the reference: §1.3, §4, §5, §9):

* ``request_limit`` — 403 ``REQUEST_LIMIT_EXCEEDED`` "TotalRequests Limit exceeded." (daily limit);
  ``concurrent_limit`` — the same code with "ConcurrentPerOrgLongTxn Limit exceeded.".
* ``expire_session`` — every session dies just before the request, which then gets the 401.
* ``non_list_401`` — a 401 whose body is a JSON object, not the usual list (§1.3, §9 item 3).
* ``server_error`` — a 503 (or ``status``) with an HTML body, as Salesforce's edge answers.
* ``slow`` — the response is held back ``delay`` seconds (client timeouts).
* ``drop`` — the connection is closed before the request is processed.
* ``lost_response`` — the request is processed (a write is applied), then the connection drops.
* ``lock_row`` — ``UNABLE_TO_LOCK_ROW`` for the chosen ``record_ids`` (all records when None):
  per record inside collections results, a 400 on single-record writes.
* ``validation`` — ``FIELD_CUSTOM_VALIDATION_EXCEPTION`` (text: ``message``), same targeting.
* ``invalid_locator`` — the next ``query/01g...`` page answers ``INVALID_QUERY_LOCATOR``.

Filters: ``method``, ``path_contains`` (substring of the request target), ``object`` (the sObject
the request is about: URL, collection records' types, or the SOQL ``FROM``). Faults without a
``path_contains`` naming ``/services/oauth2`` or ``/services/Soap`` never hit login requests.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

TRANSPORT_KINDS = ("request_limit", "concurrent_limit", "expire_session", "non_list_401", "server_error", "slow",
                   "drop", "lost_response")
RECORD_KINDS = ("lock_row", "validation")
FAULT_KINDS = frozenset(TRANSPORT_KINDS + RECORD_KINDS + ("invalid_locator",))
LOGIN_PATHS = ("/services/oauth2", "/services/Soap")


@dataclass
class Fault:
    """One injected failure and the requests it applies to."""

    kind: str
    times: int = 1
    method: str | None = None
    path_contains: str | None = None
    object: str | None = None
    record_ids: set[str] | None = None
    delay: float = 0.0
    message: str | None = None
    status: int = 503

    def applies(self, method: str, target: str, objects: set[str]) -> bool:
        if self.times <= 0 or (self.method is not None and self.method.upper() != method):
            return False
        if self.path_contains is not None and self.path_contains not in target:
            return False
        if self.path_contains is None and any(target.startswith(p) for p in LOGIN_PATHS):
            return False
        return self.object is None or self.object.lower() in {o.lower() for o in objects}

    def describe(self) -> dict:
        data = asdict(self)
        data["record_ids"] = sorted(self.record_ids) if self.record_ids else None
        return data


@dataclass
class FaultBook:
    """Pending faults, consumed first-injected first. Callers hold the emulator lock."""

    faults: list[Fault] = field(default_factory=list)

    def add(self, fault: Fault) -> None:
        if fault.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault {fault.kind!r}; expected one of {sorted(FAULT_KINDS)}")
        if fault.times < 1:
            raise ValueError("times must be at least 1")
        self.faults.append(fault)

    def take(self, kinds: tuple[str, ...] | frozenset[str], method: str, target: str, objects: set[str],
             record_ids: set[str] | None = None) -> Fault | None:
        """Consume one use of the first pending fault of ``kinds`` that applies; None if none does.

        ``record_ids``: the records a write touches; record-scoped faults need an overlap."""
        for fault in self.faults:
            if fault.kind not in kinds or not fault.applies(method, target, objects):
                continue
            if fault.record_ids is not None and record_ids is not None and not fault.record_ids & record_ids:
                continue
            fault.times -= 1
            self.faults = [f for f in self.faults if f.times > 0]
            return fault
        return None

    def clear(self) -> None:
        self.faults.clear()

    def pending(self) -> list[dict]:
        return [fault.describe() for fault in self.faults]


def lock_row_error(record_id: str) -> tuple[str, str]:
    message = "unable to obtain exclusive access to this record or 1 records"
    return "UNABLE_TO_LOCK_ROW", f"{message}: {record_id}" if record_id else message


def validation_error(fault: Fault) -> tuple[str, str]:
    return "FIELD_CUSTOM_VALIDATION_EXCEPTION", fault.message or "This record was rejected by a validation rule."


def record_error(fault: Fault, record_id: str) -> tuple[str, str]:
    """(code, message) a record-scoped fault gives ``record_id``."""
    return lock_row_error(record_id) if fault.kind == "lock_row" else validation_error(fault)


SERVER_ERROR_HTML = ("<html><head><title>Service Unavailable</title></head><body><h1>Service Unavailable</h1>"
                     "<p>The server is temporarily unable to service your request due to maintenance downtime or "
                     "capacity problems. Please try again later.</p></body></html>")
