"""HubSpot OAuth access tokens that keep working for months: refreshed before they expire and
once when HubSpot answers 401, by one thread at a time, kept in memory only.

HubSpot access tokens live 30 minutes (``expires_in``; read it, don't hard-code it). The refresh
is closedloop's own request, not hubspot-api-client's: client 12 still calls ``/oauth/v1/token``,
which HubSpot retires on 2027-02-16. Its replacement (shared/reference/realtime-and-auth.md §3.1)::

    POST https://api.hubapi.com/oauth/2026-03/token
    Content-Type: application/x-www-form-urlencoded

    grant_type=refresh_token&client_id=<id>&client_secret=<secret>&refresh_token=<refresh token>

It goes through the shared HTTP plumbing (timeouts, trusted CAs, call counting) and the shared
retry policy. A refresh token HubSpot returns replaces the configured one for the life of the
process (rotation is not documented; the config keeps the original). A refused refresh token
(``invalid_grant``, "refresh token is invalid, expired or revoked": the app was uninstalled) is
an :class:`AuthError`, which pauses HubSpot until someone reconnects the app.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Callable

import requests

from adapters.errors import AuthError, RateLimited, RemoteError, TransientError
from adapters.http import connection_problem
from adapters.retry import RetryPolicy

log = logging.getLogger(__name__)

TOKEN_PATH = "/oauth/2026-03/token"
REFRESH_MARGIN = 300.0  # seconds before expiry when a token is replaced (at most a tenth of its life)


class HubSpotOAuth:
    """The current access token of one OAuth install."""

    def __init__(self, host: str, client_id: str, client_secret: str, refresh_token: str, *, http: requests.Session,
                 timeout: float, policy: RetryPolicy | None = None,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.url = host.rstrip("/") + TOKEN_PATH
        self._client_id, self._client_secret, self._refresh_token = client_id, client_secret, refresh_token
        self.http, self.timeout = http, timeout
        self.policy = policy or RetryPolicy()
        self.monotonic = monotonic
        self._lock = threading.Lock()
        self._token = ""
        self._refresh_at = 0.0
        self.refreshes = 0

    def __repr__(self) -> str:
        return f"HubSpotOAuth({self.url}, ***)"

    def token(self) -> str:
        """An access token good for a while yet; refreshes first when it is (nearly) expired."""
        if self._token and self.monotonic() < self._refresh_at:
            return self._token
        with self._lock:  # one refresh at a time; the others wait and take its token
            if not self._token or self.monotonic() >= self._refresh_at:
                self._refresh()
            return self._token

    def rejected(self, token: str) -> str:
        """HubSpot answered 401 to a call made with ``token``: refresh, unless another thread
        already did since that call was made; returns the token to retry with."""
        with self._lock:
            if token == self._token:
                self._refresh()
            return self._token

    def _refresh(self) -> None:
        started = self.monotonic()
        body = self.policy.call("HubSpot OAuth refresh", self._request)
        token, lifetime = body.get("access_token"), body.get("expires_in")
        if not token or not isinstance(lifetime, (int, float)) or lifetime <= 0:
            raise RemoteError("HubSpot's token endpoint answered without access_token/expires_in")
        self._token = str(token)
        self._refresh_at = started + lifetime - min(REFRESH_MARGIN, lifetime / 10)
        if body.get("refresh_token"):
            self._refresh_token = str(body["refresh_token"])
        self.refreshes += 1
        log.info("HubSpot OAuth access token refreshed (valid %ds)", lifetime)

    def _request(self) -> dict:
        form = {"grant_type": "refresh_token", "client_id": self._client_id, "client_secret": self._client_secret,
                "refresh_token": self._refresh_token}
        try:
            response = self.http.post(self.url, data=form, timeout=self.timeout,
                                      headers={"Accept": "application/json"})
        except requests.RequestException as exc:
            raise TransientError(f"HubSpot OAuth refresh at {self.url}: {connection_problem(exc)}") from None
        try:
            body = response.json()
        except ValueError:
            body = {}
        body = body if isinstance(body, dict) else {}
        if response.status_code == 200:
            return body
        if response.status_code == 429:
            raise RateLimited("HubSpot OAuth refresh was rate limited",
                              _seconds(response.headers.get("Retry-After")) or 10.0)
        if response.status_code >= 500:
            raise TransientError(f"HubSpot OAuth refresh at {self.url} answered {response.status_code}")
        error = body.get("error") or body.get("status") or f"HTTP {response.status_code}"
        description = body.get("error_description") or body.get("message") or "no description"
        raise AuthError(f"HubSpot refused the OAuth refresh ({error}: {description}); reconnect the app and set "
                        "the new refresh token in [hubspot] refresh_token_env")


def _seconds(value: str | None) -> float | None:
    try:
        return float(value) if value else None
    except ValueError:
        return None
