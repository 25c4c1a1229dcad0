"""Google credentials for the Data Manager API and the GA4 Data API, through google-auth.

Google's client libraries take a ``google.auth`` credentials object and fetch (and refresh)
their own access tokens with it, so closedloop only builds that object: from a service
account's JSON key (Google's recommended server setup, reference ``ad-platform-conversions.md``
§2.2) or from an OAuth client with a user's refresh token. ``token_uri`` is whatever the
config says, so the sandbox's token endpoint can stand in for ``oauth2.googleapis.com``.

The clients' HTTP sessions are configured with the same plumbing as every other adapter
(:func:`adapters.http.configure_session`: timeouts, the configured CA bundle instead of
``REQUESTS_CA_BUNDLE``, call counting). google-auth offers no public hook for that, so
:func:`configure_google_sessions` sets it on the two sessions an ``AuthorizedSession`` holds
(the API session and the one it refreshes tokens with).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field

import google.auth.exceptions
from google.oauth2 import credentials as user_credentials
from google.oauth2 import service_account

from adapters.errors import AuthError, ConfigError, TransientError
from adapters.http import CallCounter, configure_session

DATAMANAGER_SCOPE = "https://www.googleapis.com/auth/datamanager"
ANALYTICS_READONLY_SCOPE = "https://www.googleapis.com/auth/analytics.readonly"


@dataclass(frozen=True)
class GoogleCredentials:
    """What a Google identity is made of; secrets are never part of ``repr``."""

    auth: str  # "service_account" | "refresh_token"
    token_uri: str
    service_account_json: str = field(default="", repr=False)
    client_id: str = field(default="", repr=False)
    client_secret: str = field(default="", repr=False)
    refresh_token: str = field(default="", repr=False)

    def build(self, scopes: list[str]):
        """A google-auth credentials object for ``scopes`` (raises ConfigError for a bad key)."""
        if self.auth == "service_account":
            try:
                info = json.loads(self.service_account_json)
            except ValueError:
                raise ConfigError("[google_auth] the service account key is not valid JSON "
                                  "(expected the content of the key file Google gave you)") from None
            if not isinstance(info, dict) or info.get("type") != "service_account":
                raise ConfigError("[google_auth] the key is not a service account key (\"type\": \"service_account\")")
            try:
                return service_account.Credentials.from_service_account_info(
                    {**info, "token_uri": self.token_uri}, scopes=scopes)
            except (ValueError, KeyError) as exc:
                missing = str(exc).split(":")[0][:80] if isinstance(exc, KeyError) else "a field is invalid"
                raise ConfigError(f"[google_auth] the service account key cannot be used ({missing})") from None
        return user_credentials.Credentials(None, refresh_token=self.refresh_token, client_id=self.client_id,
                                            client_secret=self.client_secret, token_uri=self.token_uri, scopes=scopes)


def configure_google_sessions(authorized_session, *, timeout: float, ca_bundle: str | None,
                              counter: CallCounter | None, system: str) -> None:
    """Give a client library's ``AuthorizedSession`` closedloop's timeouts, CA bundle and call counting."""
    configure_session(authorized_session, timeout=timeout, ca_bundle=ca_bundle, counter=counter, system=system)
    token_session = getattr(authorized_session, "_auth_request_session", None)
    if token_session is not None:
        configure_session(token_session, timeout=timeout, ca_bundle=ca_bundle, counter=None, system=system)


def token_error(exc: google.auth.exceptions.GoogleAuthError, what: str) -> Exception:
    """Our error for a failed token fetch: the network is transient, a refusal is the config's fault."""
    if isinstance(exc, google.auth.exceptions.TransportError):
        return TransientError(f"{what}: the token endpoint could not be reached ({type(exc).__name__})")
    if isinstance(exc, google.auth.exceptions.RefreshError) and getattr(exc, "retryable", False):
        return TransientError(f"{what}: the token endpoint failed for now")
    reason = ""
    if exc.args and isinstance(exc.args[0], str):
        reason = exc.args[0].split(":")[0][:120]  # "invalid_grant: ..." → the OAuth error code only
    return AuthError(f"{what}: Google refused the credentials of [google_auth]"
                     + (f" ({reason})" if reason else "") + "; check the key, the client and the token_uri")
