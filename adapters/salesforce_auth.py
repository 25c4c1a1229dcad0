"""OAuth 2.0 against a Salesforce token endpoint: client credentials, JWT bearer, refresh token.

closedloop authenticates itself (against the configured login URL, which simple-salesforce
cannot be pointed at) and hands simple-salesforce only the instance URL and access token.
Password flows are deliberately absent: SOAP login is being retired and the OAuth
username-password flow is deprecated (see shared/reference/salesforce-api.md §1.2).
"""
from __future__ import annotations

import re
import time
from dataclasses import dataclass, field

import jwt
import requests

from adapters.errors import AuthError, ConfigError, TransientError
from adapters.http import connection_problem

TOKEN_PATH = "/services/oauth2/token"
PRODUCTION_AUDIENCE = "https://login.salesforce.com"
SANDBOX_AUDIENCE = "https://test.salesforce.com"
MY_DOMAIN = re.compile(r"^https://[^/]+\.my\.salesforce\.com/?$", re.IGNORECASE)
SANDBOX_HOST = re.compile(r"^https://(test\.salesforce\.com|[^/]+\.sandbox\.my\.salesforce\.com)/?$", re.IGNORECASE)


def default_audience(login_url: str) -> str:
    """The JWT ``aud`` for a login URL: https://test.salesforce.com for a sandbox (test.salesforce.com
    or a ``*.sandbox.my.salesforce.com`` My Domain), else https://login.salesforce.com.

    Salesforce documents only these two and Experience Cloud site URLs as audiences; a My Domain
    URL is not one of them, even though the token request itself may go to the My Domain host
    (shared/reference/realtime-and-auth.md §3.2)."""
    return SANDBOX_AUDIENCE if SANDBOX_HOST.match(login_url.strip()) else PRODUCTION_AUDIENCE


def documented_audience(audience: str) -> bool:
    """Whether ``audience`` may be a JWT ``aud``: anything but a My Domain URL (login, test or an
    Experience Cloud site, which lives on its own domain or ``*.my.site.com``)."""
    return not MY_DOMAIN.match(audience.strip())


@dataclass(frozen=True)
class SalesforceCredentials:
    """How to obtain a Salesforce access token. Secrets are excluded from ``repr``."""

    login_url: str
    auth: str  # "client_credentials" | "jwt" | "refresh_token"
    client_id: str = field(repr=False)
    client_secret: str = field(default="", repr=False)
    username: str = ""
    private_key: str = field(default="", repr=False)
    refresh_token: str = field(default="", repr=False)
    audience: str = ""  # JWT ``aud``; empty: :func:`default_audience` of login_url

    @property
    def jwt_audience(self) -> str:
        return (self.audience or default_audience(self.login_url)).rstrip("/")


@dataclass(frozen=True)
class Token:
    access_token: str = field(repr=False)
    instance_url: str
    org_id: str = ""  # from the identity URL ``.../id/<org id>/<user id>`` (the Pub/Sub tenant id)


def fetch_token(http: requests.Session, credentials: SalesforceCredentials, timeout: float) -> Token:
    """Run the configured grant and return the access token and instance URL."""
    url = credentials.login_url.rstrip("/") + TOKEN_PATH
    auth = None
    if credentials.auth == "client_credentials":
        form = {"grant_type": "client_credentials"}
        auth = (credentials.client_id, credentials.client_secret)
    elif credentials.auth == "jwt":
        form = {"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
                "assertion": _jwt_assertion(credentials)}
    elif credentials.auth == "refresh_token":
        form = {"grant_type": "refresh_token", "client_id": credentials.client_id,
                "client_secret": credentials.client_secret, "refresh_token": credentials.refresh_token}
    else:
        raise ConfigError(f"[salesforce] auth: unsupported flow {credentials.auth!r}")
    try:
        response = http.post(url, data=form, auth=auth, timeout=timeout, headers={"Accept": "application/json"})
    except requests.RequestException as exc:
        raise TransientError(f"cannot reach the Salesforce login at {credentials.login_url}: "
                             f"{connection_problem(exc)}") from None
    if response.status_code >= 500:
        raise TransientError(f"Salesforce login at {credentials.login_url} answered {response.status_code}")
    try:
        body = response.json()
    except ValueError:
        body = {}
    if response.status_code != 200 or not body.get("access_token"):
        error = body.get("error") or f"HTTP {response.status_code}"
        description = body.get("error_description") or "no description"
        raise AuthError(f"Salesforce refused the {credentials.auth} login at {credentials.login_url}: "
                        f"{error} ({description})")
    instance_url = str(body.get("instance_url", "")).rstrip("/")
    if not instance_url.startswith("https://"):
        raise AuthError(f"Salesforce login at {credentials.login_url} returned no usable instance_url")
    identity = str(body.get("id", "")).rstrip("/").split("/")
    org_id = identity[-2] if len(identity) >= 3 and identity[-3] == "id" else ""
    return Token(access_token=body["access_token"], instance_url=instance_url, org_id=org_id)


def _jwt_assertion(credentials: SalesforceCredentials) -> str:
    """The signed JWT: iss = consumer key, sub = username, aud = a documented audience (not the
    login URL, which may be a My Domain host), exp ≤ 3 minutes."""
    if not credentials.private_key:
        raise ConfigError("[salesforce] the JWT bearer flow needs a private key (private_key_file or private_key_env)")
    claims = {"iss": credentials.client_id, "sub": credentials.username,
              "aud": credentials.jwt_audience, "exp": int(time.time()) + 180}
    try:
        return jwt.encode(claims, credentials.private_key, algorithm="RS256")
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"[salesforce] the JWT private key cannot be used: {type(exc).__name__}") from None
