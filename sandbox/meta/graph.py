"""The Graph API's envelope: how it reads parameters and how it refuses.

Parameters (shared/reference/ad-platform-conversions.md §3.2): query string, form body or JSON
body, merged; ``access_token`` may also come as ``Authorization: Bearer``. facebook-business
26.x posts a form whose ``data`` is a JSON array of JSON-encoded event strings and puts
``access_token`` in the query string; plain-HTTPS senders usually post a JSON body with
``data`` as an array of objects. Both are read here.

Errors: HTTP 4xx/5xx with ``{"error": {"message", "type", "code", "error_subcode"?,
"is_transient", "error_user_title"?, "error_user_msg"?, "fbtrace_id"}}`` (§3.2 [OBS]); token
errors are ``OAuthException`` code 190 (expired: subcode 463) with HTTP 401 (as a recorded
cassette of graph.facebook.com shows: "Invalid OAuth access token - Cannot parse access
token"), a missing token code 104, an object the token cannot see code 100 subcode 33
(``GraphMethodException``, "Unsupported post request. Object with ID ... does not exist, cannot
be loaded due to missing permissions, or does not support this operation"), throttling codes
4/17/32 with ``is_transient: true`` (§9.2.7). Where the reference marks a code UNCERTAIN the
emulator sends no ``error_subcode`` rather than invent one.
"""
from __future__ import annotations

import json
import secrets
import string
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from sandbox.web import Request, Response

GRAPH_DOCS = "https://developers.facebook.com/docs/graph-api"


def fbtrace_id() -> str:
    alphabet = string.ascii_letters + string.digits + "_-"
    return "A" + "".join(secrets.choice(alphabet) for _ in range(22))


@dataclass
class GraphError(Exception):
    status: int
    message: str
    code: int
    type: str = "OAuthException"
    subcode: int | None = None
    user_title: str | None = None
    user_msg: str | None = None
    transient: bool = False

    def __post_init__(self) -> None:
        super().__init__(self.message)

    def body(self, trace: str) -> dict[str, Any]:
        error: dict[str, Any] = {"message": self.message, "type": self.type, "code": self.code}
        if self.subcode is not None:
            error["error_subcode"] = self.subcode
        error["is_transient"] = self.transient
        if self.user_title:
            error["error_user_title"] = self.user_title
        if self.user_msg:
            error["error_user_msg"] = self.user_msg
        error["fbtrace_id"] = trace
        return {"error": error}

    def response(self, trace: str, version: str) -> Response:
        return graph_response(self.body(trace), trace, version, self.status)


def graph_response(body: dict[str, Any], trace: str, version: str, status: int = 200) -> Response:
    return Response.json(body, status, headers={"x-fb-trace-id": trace, "x-fb-rev": "1010101",
                                                "facebook-api-version": version},
                         content_type="application/json; charset=UTF-8")


def invalid_parameter(title: str, message: str, subcode: int | None = None) -> GraphError:
    """Code 100 "Invalid parameter", the CAPI way: the detail is in error_user_title/msg."""
    return GraphError(400, "Invalid parameter", 100, subcode=subcode, user_title=title, user_msg=message)


def missing_token() -> GraphError:
    return GraphError(400, "An access token is required to request this resource.", 104)


def bad_token() -> GraphError:
    return GraphError(401, "Invalid OAuth access token - Cannot parse access token", 190)


def expired_token(expired_at: str, now: str) -> GraphError:
    return GraphError(401, f"Error validating access token: Session has expired on {expired_at}. The current time is "
                           f"{now}.", 190, subcode=463)


def unsupported(method: str, object_id: str) -> GraphError:
    return GraphError(400, f"Unsupported {method.lower()} request. Object with ID '{object_id}' does not exist, cannot "
                           f"be loaded due to missing permissions, or does not support this operation. Please read "
                           f"the Graph API documentation at {GRAPH_DOCS}", 100, "GraphMethodException", subcode=33)


def params(request: Request) -> dict[str, Any]:
    """Query string, then form or JSON body (body wins), last value of a repeated key."""
    merged: dict[str, Any] = {key: values[-1] for key, values in request.query.items()}
    content_type = (request.header("Content-Type") or "").split(";")[0].strip().lower()
    if request.body:
        if content_type == "application/json":
            try:
                body = json.loads(request.body.decode("utf-8"))
            except (UnicodeDecodeError, ValueError):
                raise GraphError(400, "(#100) Invalid JSON in the request body", 100) from None
            if not isinstance(body, dict):
                raise GraphError(400, "(#100) The request body must be a JSON object", 100)
            merged.update(body)
        else:
            form = parse_qs(request.body.decode("utf-8", "replace"), keep_blank_values=True)
            merged.update({key: values[-1] for key, values in form.items()})
    authorization = request.header("Authorization") or ""
    if "access_token" not in merged and authorization.lower().startswith(("bearer ", "oauth ")):
        merged["access_token"] = authorization.split(" ", 1)[1].strip()
    return merged
