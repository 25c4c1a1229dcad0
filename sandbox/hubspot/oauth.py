"""HubSpot's OAuth token endpoints: the legacy ``POST /oauth/v1/token`` and its replacement
``POST /oauth/2026-03/token``, and the access tokens they hand out.

Wire facts (shared/reference/hubspot-api.md §2.2; realtime-and-auth.md §3.1):

- both take ``application/x-www-form-urlencoded`` bodies and no Authorization header; the dated
  endpoint wants *every* parameter in the body ("all parameters in the form body; nothing in
  the query string"), so a query string, another content type or a missing field is refused;
- a refresh answers ``access_token``, ``refresh_token``, ``expires_in`` (1800: access tokens live
  30 minutes; configurable here so tests run through several expiries), ``token_type``; the
  dated endpoint adds ``token_use`` ("access_token"), ``hub_id`` and ``scopes`` (the 2026-03
  ``AccessTokenResponse``);
- failures are HTTP 400. v1 bodies carry the legacy ``status`` code (``BAD_REFRESH_TOKEN``,
  ``BAD_CLIENT_ID``, ``BAD_GRANT_TYPE``) and ``message``; the dated endpoint's carry RFC 6749
  ``error``/``error_description`` as well ("new OAuth v3 API endpoints and standardized error
  responses" changelog): ``invalid_grant`` "refresh token is invalid, expired or revoked",
  ``invalid_client``, ``unsupported_grant_type``, ``invalid_request``;
- refresh tokens have no published expiry and die when the app is uninstalled
  (:meth:`OAuthServer.revoke_refresh_token`).

The 2026-03 spec also accepts ``authorization_code`` and ``client_credentials`` grants; this
sandbox plays an installed app and refuses them as ``unsupported_grant_type``.
"""
from __future__ import annotations

import base64
import hashlib
import itertools
import threading
from datetime import datetime, timedelta

from sandbox.clock import Clock
from sandbox.hubspot.wire import body_response, error, error_body
from sandbox.web import Request, Response

V1 = "/oauth/v1/token"
DATED = "/oauth/2026-03/token"
PATHS = (V1, DATED)
FORM = "application/x-www-form-urlencoded"
SCOPES = ["crm.objects.contacts.read", "crm.objects.contacts.write", "crm.objects.deals.read",
          "crm.schemas.contacts.read", "crm.schemas.contacts.write", "oauth"]


class OAuthServer:
    """The OAuth app installed in the portal and the access tokens alive now."""

    def __init__(self, clock: Clock, lock: threading.RLock, *, client_id: str, client_secret: str,
                 refresh_token: str, lifetime_seconds: int, portal_id: int) -> None:
        self.clock, self.lock = clock, lock
        self.client = {"client_id": client_id, "client_secret": client_secret, "refresh_token": refresh_token}
        self.lifetime_seconds = lifetime_seconds
        self.portal_id = portal_id
        self.access_tokens: dict[str, datetime] = {}
        self.refreshes = 0
        self.revoked = False
        self._numbers = itertools.count(1)

    def expiry(self, token: str) -> datetime | None:
        """When ``token`` expires (None: never issued)."""
        with self.lock:
            return self.access_tokens.get(token)

    def expire_all(self) -> None:
        with self.lock:
            now = self.clock.now()
            self.access_tokens = {token: min(expiry, now) for token, expiry in self.access_tokens.items()}

    def revoke_refresh_token(self, revoked: bool = True) -> None:
        """As when the app is uninstalled: refreshes fail with invalid_grant (False reinstalls it)."""
        with self.lock:
            self.revoked = revoked

    def reset(self) -> None:
        with self.lock:
            self.access_tokens.clear()
            self.refreshes = 0
            self.revoked = False

    def handle(self, request: Request) -> Response:
        if request.method != "POST":
            return error(405, "Method not allowed")
        dated = request.path == DATED
        refused = self._refuse_shape(request) if dated else None
        if refused is not None:
            return refused
        form = request.form()
        missing = [name for name in ("grant_type", "client_id", "client_secret", "refresh_token")
                   if not form.get(name)] if dated else []
        if form.get("grant_type") != "refresh_token":
            if dated and "grant_type" in missing:
                return _failure(dated, "invalid_request", "BAD_GRANT_TYPE", "missing grant_type")
            return _failure(dated, "unsupported_grant_type", "BAD_GRANT_TYPE",
                            "grant_type must be refresh_token in this sandbox")
        if missing:
            return _failure(dated, "invalid_request", "BAD_REQUEST", f"missing {', '.join(missing)}")
        if form.get("client_id") != self.client["client_id"] or \
                form.get("client_secret") != self.client["client_secret"]:
            return _failure(dated, "invalid_client", "BAD_CLIENT_ID", "missing or unknown client id")
        with self.lock:
            if self.revoked or form.get("refresh_token") != self.client["refresh_token"]:
                return _failure(dated, "invalid_grant", "BAD_REFRESH_TOKEN",
                                "refresh token is invalid, expired or revoked" if dated
                                else "missing or invalid refresh token")
            token = self._issue()
        body = {"token_type": "bearer", "refresh_token": form["refresh_token"], "access_token": token,
                "expires_in": self.lifetime_seconds}
        if dated:
            body.update(token_use="access_token", hub_id=self.portal_id, scopes=SCOPES)
        return Response.json(body, 200, content_type="application/json;charset=utf-8")

    def _refuse_shape(self, request: Request) -> Response | None:
        """The dated endpoint takes a form body only."""
        if request.query:
            return _failure(True, "invalid_request", "BAD_REQUEST",
                            "parameters must be sent in the request body, not the query string")
        content_type = (request.header("Content-Type") or "").split(";")[0].strip().lower()
        if content_type != FORM:
            return _failure(True, "invalid_request", "BAD_REQUEST", f"Content-Type must be {FORM}")
        return None

    def _issue(self) -> str:
        number = next(self._numbers)
        self.refreshes += 1
        digest = hashlib.sha256(f"{self.client['client_id']}:{self.portal_id}:{number}".encode()).digest()
        token = "CO" + base64.urlsafe_b64encode(digest * 4).decode().rstrip("=")  # ~170 chars, under 300
        self.access_tokens[token] = self.clock.now() + timedelta(seconds=self.lifetime_seconds)
        return token


def _failure(dated: bool, error_code: str, status: str, message: str) -> Response:
    """A 400 in the endpoint's own shape: legacy ``status``/``message``, plus RFC 6749 fields on
    the dated endpoint."""
    body = error_body(message, None)
    body["status"] = status
    if dated:
        body.update(error=error_code, error_description=message)
    return body_response(body, 400)
