"""Google's REST error model: an HTTP status and a ``google.rpc.Status`` with typed details.

Every Google API emulated here (Data Manager, the GA4 Data API, the OAuth-protected edge in
front of them) refuses requests the same way, so the shape lives in one place:

    {"error": {"code": 400, "message": "...", "status": "INVALID_ARGUMENT",
               "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason", "domain", "metadata"},
                           {"@type": "type.googleapis.com/google.rpc.BadRequest", "fieldViolations": [...]},
                           {"@type": "type.googleapis.com/google.rpc.RequestInfo", "requestId": "..."}]}}

Sources: shared/reference/ad-platform-conversions.md §2.5 (DM-ERR: "HTTP status +
``google.rpc.Status`` (``error.code`` = HTTP code, ``error.status``, ``error.details[]`` with
``ErrorInfo``, ``BadRequest.fieldViolations``, ``RequestInfo``)"); the auth refusals' wording and
reasons (``CREDENTIALS_MISSING``, ``ACCESS_TOKEN_SCOPE_INSUFFICIENT``...) as Google's edge answers
them, quoted in public bug reports (e.g. github.com/analogdotnow/Analog/issues/296,
github.com/reactmore/morelab/issues/17). google-api-core turns this body into its typed
exceptions (``InvalidArgument``, ``PermissionDenied``...) with ``.reason`` and ``.details``.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from sandbox.web import Response

HTTP_STATUS = {"INVALID_ARGUMENT": 400, "FAILED_PRECONDITION": 400, "OUT_OF_RANGE": 400, "UNAUTHENTICATED": 401,
               "PERMISSION_DENIED": 403, "NOT_FOUND": 404, "ALREADY_EXISTS": 409, "RESOURCE_EXHAUSTED": 429,
               "CANCELLED": 499, "INTERNAL": 500, "UNKNOWN": 500, "UNIMPLEMENTED": 501, "UNAVAILABLE": 503,
               "DEADLINE_EXCEEDED": 504}
TYPE_PREFIX = "type.googleapis.com/google.rpc."


@dataclass(frozen=True)
class FieldViolation:
    """One ``BadRequest.FieldViolation``: the field's path as the proto names it, and why."""

    field: str
    description: str
    reason: str = ""

    def as_json(self) -> dict[str, str]:
        data = {"field": self.field, "description": self.description}
        if self.reason:
            data["reason"] = self.reason
        return data


@dataclass
class ApiError(Exception):
    """A refusal in Google's error model; ``response()`` renders it."""

    status: str
    message: str
    reason: str = ""
    domain: str = ""
    metadata: dict[str, str] = field(default_factory=dict)
    violations: list[FieldViolation] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__init__(self.message)

    @property
    def code(self) -> int:
        return HTTP_STATUS[self.status]

    def body(self, request_id: str | None = None) -> dict[str, Any]:
        details: list[dict[str, Any]] = []
        if self.reason:
            details.append({"@type": TYPE_PREFIX + "ErrorInfo", "reason": self.reason, "domain": self.domain,
                            "metadata": dict(self.metadata)})
        if self.violations:
            details.append({"@type": TYPE_PREFIX + "BadRequest",
                            "fieldViolations": [violation.as_json() for violation in self.violations]})
        if request_id:
            details.append({"@type": TYPE_PREFIX + "RequestInfo", "requestId": request_id})
        error: dict[str, Any] = {"code": self.code, "message": self.message, "status": self.status}
        if details:
            error["details"] = details
        return {"error": error}

    def response(self, request_id: str | None = None) -> Response:
        return Response.json(self.body(request_id or new_request_id()), self.code, headers=dict(self.headers),
                             content_type="application/json; charset=UTF-8")


def new_request_id() -> str:
    return uuid.uuid4().hex


def invalid_argument(violations: list[FieldViolation], domain: str, metadata: dict[str, str] | None = None,
                     message: str | None = None) -> ApiError:
    """A 400 naming every offending field; ``ErrorInfo.reason`` is the first violation's reason."""
    first = violations[0]
    more = f" ({len(violations) - 1} more in details)" if len(violations) > 1 else ""
    return ApiError("INVALID_ARGUMENT", message or f"{first.description}{more}", reason=first.reason or
                    "INVALID_ARGUMENT", domain=domain, metadata=dict(metadata or {}), violations=list(violations))
