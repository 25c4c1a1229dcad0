"""Injected faults: what a flaky HubSpot and the network in front of it do to a client.

Kinds (shared/reference/hubspot-api.md §7.2, §7.4, §10, §11 "Optionally"):

- ``429`` / ``429_retry_after`` / ``daily_429`` / ``secondly_429``: rate-limit refusals with the
  §7.2 bodies (``Retry-After`` only on ``429_retry_after``, or when ``retry_after`` is given);
- ``423``, ``477`` (with ``Retry-After``), ``500``, ``502``, ``503``, ``504``, ``524``: transient
  statuses; ``html=True`` (or ``html_503``) answers with a CDN's HTML page instead of JSON;
- ``missing_scopes``: the 403 ``MISSING_SCOPES`` body of §8;
- ``hang``: the request is processed, the response is held back ``delay`` seconds;
- ``drop``: the connection is closed before the request is processed;
- ``lost_response``: the request is processed (a write is committed), then the connection is
  closed without a response (commit-then-timeout, §12.8);
- ``status_200_for_201``: a create answers 200 instead of 201, so the client returns ``None``
  (§1.4, hubspot-api-python#448).

Each fault fires ``times`` times on requests matching ``method`` and ``path_contains``.
"""
from __future__ import annotations

from dataclasses import dataclass

from sandbox.hubspot.limits import daily_body, secondly_body, ten_secondly_body
from sandbox.hubspot.wire import body_response, error_body, html
from sandbox.web import Request, Response

TRANSIENT = {"423": (423, "Locked"), "477": (477, "Migration in progress"), "500": (500, "Internal Server Error"),
             "502": (502, "Bad Gateway"), "503": (503, "Service Unavailable"), "504": (504, "Gateway Timeout"),
             "524": (524, "A Timeout Occurred")}
RATE_LIMITS = {"429", "429_retry_after", "daily_429", "secondly_429"}
TRANSPORT = {"hang", "drop", "lost_response"}
FAULT_KINDS = RATE_LIMITS | set(TRANSIENT) | TRANSPORT | {"html_503", "missing_scopes", "status_200_for_201"}


@dataclass
class Fault:
    """One armed fault; ``times`` counts down as it fires."""

    kind: str
    times: int = 1
    method: str | None = None
    path_contains: str | None = None
    delay: float = 0.0
    retry_after: float | None = None
    html: bool = False

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault {self.kind!r}; expected one of {sorted(FAULT_KINDS)}")
        if self.kind == "html_503":
            self.kind, self.html = "503", True
        if self.method:
            self.method = self.method.upper()

    def matches(self, request: Request) -> bool:
        return (self.times > 0 and (self.method is None or self.method == request.method)
                and (self.path_contains is None or self.path_contains in request.path))

    def response(self, portal_id: int) -> Response | None:
        """The canned answer of a status fault; None for transport and drift faults."""
        if self.kind in RATE_LIMITS:
            body = {"429": lambda: ten_secondly_body(portal_id, "private-app"),
                    "429_retry_after": lambda: ten_secondly_body(portal_id, "private-app"),
                    "daily_429": daily_body, "secondly_429": secondly_body}[self.kind]()
            response = body_response(body, 429)
            retry_after = self.retry_after if self.retry_after is not None else (
                1 if self.kind == "429_retry_after" else None)
            if retry_after is not None:
                response.headers["Retry-After"] = _seconds(retry_after)
            return response
        if self.kind in TRANSIENT:
            status, title = TRANSIENT[self.kind]
            if self.html:
                response = html(status, title)
            else:
                response = body_response(error_body(f"{title}. Please retry the request.",
                                                    "INTERNAL_ERROR" if status >= 500 else "LOCKED"), status)
            retry_after = self.retry_after if self.retry_after is not None else (1 if status == 477 else None)
            if retry_after is not None:
                response.headers["Retry-After"] = _seconds(retry_after)
            return response
        if self.kind == "missing_scopes":
            return body_response(error_body(
                "This app hasn't been granted all required scopes to make this call. Read more about required scopes "
                "here: https://developers.hubspot.com/scopes.", "MISSING_SCOPES",
                errors=[{"message": "One or more of the following scopes are required.",
                         "context": {"requiredGranularScopes": ["crm.objects.contacts.read"]}}],
                links={"scopes": "https://developers.hubspot.com/scopes"}), 403)
        return None


def _seconds(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)
