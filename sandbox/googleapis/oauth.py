"""Google OAuth 2.0 for service accounts: the token endpoint and the check every Google API makes.

What the real clients do (google-auth 2.x, read in ``google/oauth2/service_account.py`` and
``google/auth/jwt.py``, and observed against this emulator):

- **Token endpoint** (``token_uri`` of the key file): ``POST`` form ``grant_type=
  urn:ietf:params:oauth:grant-type:jwt-bearer&assertion=<JWT>``. The assertion is RS256-signed
  with the service account's private key, header ``kid`` = ``private_key_id``, claims ``iss`` =
  the account's e-mail, ``aud`` = ``https://oauth2.googleapis.com/token`` (google-auth writes
  Google's audience whatever ``token_uri`` says), ``scope`` (space separated), ``iat``, ``exp``
  (one hour). Answer ``{"access_token", "expires_in", "token_type": "Bearer"}``; refusals are
  HTTP 400 ``{"error", "error_description"}`` (``invalid_grant`` "Invalid JWT Signature.",
  ``invalid_scope`` "Invalid OAuth scope or ID token audience provided.", ``unsupported_grant_type``
  — wording as google-auth's RefreshError reports it, e.g.
  github.com/googleapis/google-cloud-python/issues/10004).
- **Self-signed JWTs**: GAPIC clients (google-ads-datamanager, google-analytics-data) create
  their service-account credentials with ``always_use_jwt_access=True``, so by default they never
  call the token endpoint: they send ``Authorization: Bearer <JWT>`` signed by the same key, with
  ``iss`` = ``sub`` = the e-mail and either a ``scope`` claim (when the caller gave scopes) or
  ``aud`` = ``https://<service host>/`` (https://google.aip.dev/auth/4111). Google verifies those
  itself; so does this emulator.
- **The API's check**: no credential → 401 ``CREDENTIALS_MISSING``; a token Google cannot
  verify, or an expired one → 401 ("Request had invalid authentication credentials..."); a valid
  token without any of the API's scopes → 403 ``ACCESS_TOKEN_SCOPE_INSUFFICIENT`` "Request had
  insufficient authentication scopes." (status.py cites where that wording comes from). The
  reference's §9.1.8 groups the wrong scope with 401; Google's edge answers 403, and so does this.

Time: assertions and self-signed JWTs carry the client's wall-clock ``iat``/``exp`` (google-auth
uses ``utcnow()``), so validity is judged on the wall clock (``wall_clock``), not on the sandbox
``Clock`` that tests freeze and advance for business rules. ``expire_tokens()`` ends every issued
access token now, for tests of a token that dies mid-run.

Keys: :meth:`GoogleOAuth.create_service_account` makes a key pair and writes a key file shaped
like one downloaded from Google Cloud (``token_uri`` pointing here); :meth:`register_key` accepts
a public key made elsewhere. The emulator only ever holds public keys of keys it did not make.
"""
from __future__ import annotations

import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from sandbox.googleapis.status import ApiError
from sandbox.web import Request, Response, Router, ServedApp

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
# The audiences Google's token endpoint answers to (google-auth's _GOOGLE_OAUTH2_TOKEN_ENDPOINT
# and the older endpoints still accepted).
TOKEN_AUDIENCES = ("https://oauth2.googleapis.com/token", "https://www.googleapis.com/oauth2/v4/token",
                   "https://accounts.google.com/o/oauth2/token")
SCOPE_PREFIX = "https://www.googleapis.com/auth/"
KNOWN_SCOPES = frozenset(SCOPE_PREFIX + name for name in (
    "datamanager", "analytics", "analytics.readonly", "analytics.edit", "adwords", "cloud-platform",
    "cloud-platform.read-only", "userinfo.email"))
MAX_ASSERTION_LIFETIME = 3600   # "Token must be a short-lived token (60 minutes)"
CLOCK_SKEW = 300                # tolerance for iat slightly in the future
ACCESS_TOKEN_LIFETIME = 3600
MISSING_CREDENTIAL = ("Request is missing required authentication credential. Expected OAuth 2 access token, login "
                      "cookie or other valid authentication credential. See "
                      "https://developers.google.com/identity/sign-in/web/devconsole-project.")
INVALID_CREDENTIAL = ("Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie "
                      "or other valid authentication credential. See "
                      "https://developers.google.com/identity/sign-in/web/devconsole-project.")
INSUFFICIENT_SCOPES = "Request had insufficient authentication scopes."
REALM = 'Bearer realm="https://accounts.google.com/"'
DEFAULT_SERVICE_ACCOUNT = "closedloop@closedloop-sandbox.iam.gserviceaccount.com"


@dataclass(frozen=True)
class GoogleService:
    """What one API accepts: its host (the self-signed JWT audience) and its OAuth scopes."""

    host: str
    scopes: tuple[str, ...]

    @property
    def audience(self) -> str:
        return f"https://{self.host}/"


@dataclass(frozen=True)
class Principal:
    """Who is calling: the service account's e-mail, its project, and the scopes it holds."""

    email: str
    project_id: str
    scopes: frozenset[str]
    via: str  # "access_token" or "self_signed_jwt"


@dataclass
class ServiceAccount:
    email: str
    project_id: str
    keys: dict[str, Any] = field(default_factory=dict)  # private_key_id → public key


@dataclass
class IssuedToken:
    email: str
    scopes: frozenset[str]
    expires_at: float


class TokenRefused(Exception):
    """A refused token request: HTTP 400 ``{"error", "error_description"}``."""

    def __init__(self, error: str, description: str) -> None:
        super().__init__(description)
        self.error, self.description = error, description


class GoogleOAuth(ServedApp):
    """The OAuth side of Google: service accounts, the token endpoint, and token checks.

    Serve it with :meth:`start` (``url``/``token_uri``); give the same instance to every Google
    API emulator so they accept its tokens. Control over HTTP: ``GET /_sandbox/service-accounts``,
    ``POST /_sandbox/expire-tokens``, ``GET /_sandbox/requests`` (token requests, no secrets).
    """

    server_name = "google-oauth"

    def __init__(self, *, data_dir: Path | None = None, wall_clock: Callable[[], float] = time.time,
                 token_lifetime_seconds: int = ACCESS_TOKEN_LIFETIME) -> None:
        self.data_dir = Path(data_dir) if data_dir else None
        self.wall_clock = wall_clock
        self.token_lifetime_seconds = token_lifetime_seconds
        self.lock = threading.RLock()
        self.accounts: dict[str, ServiceAccount] = {}
        self.tokens: dict[str, IssuedToken] = {}
        self.log: list[dict[str, Any]] = []
        self._default_key_file: Path | None = None
        self.router = Router()
        self.router.add("POST", r"/token", self._token_endpoint)
        self.router.add("GET", r"/_sandbox/service-accounts", lambda r: Response.json(self.describe()))
        self.router.add("POST", r"/_sandbox/expire-tokens", lambda r: Response.json({"expired": self.expire_tokens()}))
        self.router.add("GET", r"/_sandbox/requests", lambda r: Response.json(self.request_log()))

    # -- serving ------------------------------------------------------------------------

    @property
    def token_uri(self) -> str:
        """What a key file's ``token_uri`` names: this emulator's ``/token``."""
        return self.url + "/token"

    def __call__(self, request: Request) -> Response:
        handler = self.router.resolve(request)
        if handler is None:
            return Response.json({"error": "not_found", "error_description": "no such endpoint"}, 404)
        return handler(request)

    # -- service accounts ---------------------------------------------------------------

    @property
    def service_account_file(self) -> Path:
        """The key file of :data:`DEFAULT_SERVICE_ACCOUNT` (made on first use, in ``data_dir``).

        The Google emulators grant this account access by default; point a client's
        ``Credentials.from_service_account_file`` at it.
        """
        with self.lock:
            if self._default_key_file is None:
                if self.data_dir is None:
                    raise ValueError("the OAuth emulator needs a data_dir to write its key file")
                self._default_key_file = self.create_service_account(
                    DEFAULT_SERVICE_ACCOUNT, key_path=self.data_dir / "service-account.json")
            return self._default_key_file

    def create_service_account(self, email: str = DEFAULT_SERVICE_ACCOUNT, *,
                               project_id: str = "closedloop-sandbox", key_path: Path | None = None) -> Path:
        """Create (or add a key to) a service account and write its JSON key file.

        The file has the fields of a key downloaded from Google Cloud, with ``token_uri`` set to
        this emulator's token endpoint (so ``start()`` first). Returns the file's path (mode 0600).
        """
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        key_id = secrets.token_hex(20)
        self.register_key(email, private.public_key(), key_id, project_id=project_id)
        pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption()).decode()
        local, _, _ = email.partition("@")
        info = {"type": "service_account", "project_id": project_id, "private_key_id": key_id, "private_key": pem,
                "client_email": email, "client_id": str(int(key_id[:15], 16)),
                "auth_uri": "https://accounts.google.com/o/oauth2/auth", "token_uri": self.token_uri,
                "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
                "client_x509_cert_url": f"{self.url}/robot/v1/metadata/x509/{local}",
                "universe_domain": "googleapis.com"}
        if key_path is None:
            if self.data_dir is None:
                raise ValueError("give key_path, or a data_dir to the emulator")
            key_path = self.data_dir / f"{local}-{key_id[:8]}.json"
        key_path = Path(key_path)
        key_path.parent.mkdir(parents=True, exist_ok=True)
        key_path.write_text(json.dumps(info, indent=2))
        key_path.chmod(0o600)
        return key_path

    def register_key(self, email: str, public_key: Any, key_id: str, *, project_id: str = "closedloop-sandbox") -> None:
        """Trust ``public_key`` (a key object or PEM text) for ``email`` under ``key_id``."""
        if isinstance(public_key, (str, bytes)):
            text = public_key.encode() if isinstance(public_key, str) else public_key
            public_key = serialization.load_pem_public_key(text)
        with self.lock:
            account = self.accounts.setdefault(email, ServiceAccount(email, project_id))
            account.keys[key_id] = public_key

    def delete_keys(self, email: str) -> None:
        """Delete every key of ``email``: its assertions and self-signed JWTs stop verifying."""
        with self.lock:
            if email in self.accounts:
                self.accounts[email].keys.clear()

    def expire_tokens(self) -> int:
        """End every issued access token now; returns how many were live."""
        with self.lock:
            now = self.wall_clock()
            live = [token for token in self.tokens.values() if token.expires_at > now]
            for token in live:
                token.expires_at = now
            return len(live)

    def describe(self) -> list[dict[str, Any]]:
        with self.lock:
            return [{"email": account.email, "project_id": account.project_id, "key_ids": sorted(account.keys)}
                    for account in self.accounts.values()]

    def request_log(self) -> list[dict[str, Any]]:
        with self.lock:
            return [dict(entry) for entry in self.log]

    # -- the token endpoint -------------------------------------------------------------

    def _token_endpoint(self, request: Request) -> Response:
        form = request.form()
        try:
            if form.get("grant_type") != JWT_BEARER:
                raise TokenRefused("unsupported_grant_type", f"Invalid grant_type: {form.get('grant_type', '')}")
            if not form.get("assertion"):
                raise TokenRefused("invalid_request", "Missing required parameter: assertion")
            claims = self._verify(form["assertion"], TOKEN_AUDIENCES + (self.token_uri,), require_audience=True)
            scopes = frozenset(str(claims.get("scope") or "").split())
            if not scopes or not scopes <= KNOWN_SCOPES:
                raise TokenRefused("invalid_scope", "Invalid OAuth scope or ID token audience provided.")
        except TokenRefused as refused:
            with self.lock:
                self.log.append({"at": self.wall_clock(), "status": 400, "error": refused.error,
                                 "error_description": refused.description})
            return Response.json({"error": refused.error, "error_description": refused.description}, 400)
        token = "ya29.c." + secrets.token_urlsafe(48)
        with self.lock:
            self.tokens[token] = IssuedToken(claims["iss"], scopes, self.wall_clock() + self.token_lifetime_seconds)
            self.log.append({"at": self.wall_clock(), "status": 200, "email": claims["iss"],
                             "scopes": sorted(scopes)})
        return Response.json({"access_token": token, "expires_in": self.token_lifetime_seconds - 1,
                              "token_type": "Bearer"})

    def _verify(self, assertion: str, audiences: tuple[str, ...], *, require_audience: bool) -> dict[str, Any]:
        """Decode and verify a service-account JWT; TokenRefused says why not."""
        try:
            header = jwt.get_unverified_header(assertion)
            unverified = jwt.decode(assertion, options={"verify_signature": False})
        except jwt.PyJWTError:
            raise TokenRefused("invalid_grant", "Invalid JWT: the assertion is not a signed JWT.") from None
        with self.lock:
            account = self.accounts.get(str(unverified.get("iss", "")))
            key = account.keys.get(str(header.get("kid", ""))) if account else None
        if account is None:
            raise TokenRefused("invalid_grant", "Invalid grant: account not found")
        if key is None or header.get("alg") != "RS256":
            raise TokenRefused("invalid_grant", "Invalid JWT Signature.")
        try:
            claims = jwt.decode(assertion, key, algorithms=["RS256"], options={"verify_aud": False,
                                                                             "verify_exp": False,
                                                                             "verify_iat": False})
        except jwt.PyJWTError:
            raise TokenRefused("invalid_grant", "Invalid JWT Signature.") from None
        now = self.wall_clock()
        iat, exp = claims.get("iat"), claims.get("exp")
        if (not isinstance(iat, (int, float)) or not isinstance(exp, (int, float)) or exp - iat > MAX_ASSERTION_LIFETIME
                or iat > now + CLOCK_SKEW or exp <= now):
            raise TokenRefused("invalid_grant", "Invalid JWT: Token must be a short-lived token (60 minutes) and in a "
                                                "reasonable timeframe. Check your iat and exp values in the JWT claim.")
        audience = claims.get("aud")
        if (require_audience or audience is not None) and audience not in audiences:
            raise TokenRefused("invalid_grant", f"Invalid JWT: Failed audience check. The right audience is "
                                                f"{audiences[0]}")
        return claims

    # -- what every API does before anything else ----------------------------------------

    def authenticate(self, request: Request, service: GoogleService, method: str) -> Principal:
        """The caller of ``request`` to ``service``, or the ApiError Google's edge answers with.

        ``method`` is the RPC's full name, reported in ``ErrorInfo.metadata`` as Google does.
        """
        metadata = {"service": service.host, "method": method}
        authorization = request.header("Authorization")
        if not authorization:
            raise ApiError("UNAUTHENTICATED", MISSING_CREDENTIAL, "CREDENTIALS_MISSING", "googleapis.com", metadata,
                           headers={"WWW-Authenticate": REALM})
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise self._invalid("ACCESS_TOKEN_TYPE_UNSUPPORTED", metadata)
        principal = self._from_self_signed_jwt(token, service, metadata) if _is_jwt(token) else \
            self._from_access_token(token, metadata)
        if not principal.scopes & set(service.scopes):
            raise ApiError("PERMISSION_DENIED", INSUFFICIENT_SCOPES, "ACCESS_TOKEN_SCOPE_INSUFFICIENT",
                           "googleapis.com", metadata,
                           headers={"WWW-Authenticate": f'{REALM}, error="insufficient_scope", '
                                                        f'scope="{" ".join(service.scopes)}"'})
        return principal

    def _from_access_token(self, token: str, metadata: dict[str, str]) -> Principal:
        with self.lock:
            issued = self.tokens.get(token)
            account = self.accounts.get(issued.email) if issued else None
        if issued is None or account is None:
            raise self._invalid("ACCESS_TOKEN_TYPE_UNSUPPORTED", metadata)
        if issued.expires_at <= self.wall_clock():
            raise self._invalid("ACCESS_TOKEN_EXPIRED", metadata)
        return Principal(issued.email, account.project_id, issued.scopes, "access_token")

    def _from_self_signed_jwt(self, token: str, service: GoogleService, metadata: dict[str, str]) -> Principal:
        try:
            claims = self._verify(token, (service.audience,), require_audience=False)
        except TokenRefused as refused:
            expired = "short-lived" in refused.description
            raise self._invalid("ACCESS_TOKEN_EXPIRED" if expired else "ACCESS_TOKEN_TYPE_UNSUPPORTED",
                                metadata) from None
        if claims.get("sub", claims["iss"]) != claims["iss"]:
            raise self._invalid("ACCESS_TOKEN_TYPE_UNSUPPORTED", metadata)
        scope_claim = str(claims.get("scope") or "").split()
        if scope_claim:
            scopes = frozenset(scope_claim)
        elif claims.get("aud") == service.audience:
            scopes = frozenset(service.scopes)   # an audience JWT is good for the whole API
        else:
            raise self._invalid("ACCESS_TOKEN_TYPE_UNSUPPORTED", metadata)
        with self.lock:
            project_id = self.accounts[claims["iss"]].project_id
        return Principal(claims["iss"], project_id, scopes, "self_signed_jwt")

    @staticmethod
    def _invalid(reason: str, metadata: dict[str, str]) -> ApiError:
        return ApiError("UNAUTHENTICATED", INVALID_CREDENTIAL, reason, "googleapis.com", metadata,
                        headers={"WWW-Authenticate": f'{REALM}, error="invalid_token"'})


def _is_jwt(token: str) -> bool:
    """Whether a bearer token is a JWT (access tokens like ``ya29.c.…`` contain dots too)."""
    try:
        return "alg" in jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        return False
