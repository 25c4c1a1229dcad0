"""Salesforce authentication: OAuth 2.0 token grants, SOAP login, and sessions.

Shapes from reference §1: token JSON ``{access_token, instance_url, id, token_type, issued_at,
signature, scope}``; failures HTTP 400 ``{"error", "error_description"}`` with Salesforce's
codes (``invalid_client_id`` "client identifier invalid", ``invalid_client`` "invalid client
credentials", ``invalid_grant`` "authentication failure" / "expired access/refresh token",
``unsupported_grant_type`` "grant type not supported"; JWT: "audience is invalid", "expired
authorization code"). SOAP login answers default-namespace ``sessionId``/``serverUrl`` or a
500 fault (``INVALID_LOGIN``); ``login()`` is gone from API 65.0 on (§1.2).

Sessions expire after ``session_seconds`` of inactivity on the emulator's clock (the org's
session timeout; ``sessionSecondsValid`` in SOAP's userInfo).

JWT audiences: Salesforce documents ``https://login.salesforce.com``, ``https://test.salesforce.com``
(sandboxes) and an Experience Cloud site URL (``extra_audiences``); a My Domain URL is not
listed (shared/reference/realtime-and-auth.md §3.2, help article "OAuth 2.0 JWT Bearer Flow").
Whether the real token endpoint accepts one is unverified, so the emulator, whose own URL
plays the My Domain host, refuses it as "audience is invalid" unless
``accept_my_domain_audience`` is set.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import threading
import time
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from sandbox.clock import Clock

JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
JWT_MAX_LIFETIME = 300  # Salesforce wants exp within ~3 minutes; allow a little clock skew

DEFAULT_CREDENTIALS = {
    "client_id": "3MVG9sandbox.closedloop.consumer.key",
    "client_secret": "sandbox-consumer-secret-4f1c",
    "username": "integration@closedloop.sandbox",
    "password": "sandbox-password",
    "security_token": "sandboxtoken",
    "refresh_token": "5Aep861sandboxRefreshToken000001",
}


@dataclass
class Session:
    user_id: str
    expires_at: datetime
    dead: bool = False


class OAuthError(Exception):
    """A refused token request: HTTP 400 ``{"error", "error_description"}``."""

    def __init__(self, error: str, description: str) -> None:
        super().__init__(description)
        self.error, self.description = error, description


class SoapFault(Exception):
    """A refused SOAP login: HTTP 500 with ``sf:exceptionCode``/``sf:exceptionMessage``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


class Authority:
    """The connected app, the integration user's credentials, and live sessions."""

    def __init__(self, data_dir: Path, clock: Clock, user_id: str, organization_id: str, session_seconds: int, *,
                 credentials: dict[str, str] | None = None, soap_login_max_version: float | None = 64.0) -> None:
        self.clock, self.user_id, self.organization_id = clock, user_id, organization_id
        self.session_seconds = session_seconds
        self.soap_login_max_version = soap_login_max_version
        values = {**DEFAULT_CREDENTIALS, **(credentials or {})}
        self.client_id, self.client_secret = values["client_id"], values["client_secret"]
        self.username, self.password = values["username"], values["password"]
        self.security_token = values["security_token"]
        self.refresh_tokens = {values["refresh_token"]}
        self._lock = threading.Lock()
        self.sessions: dict[str, Session] = {}
        self.private_key_path = Path(data_dir) / "jwt_private_key.pem"
        self.public_key_path = Path(data_dir) / "jwt_public_key.pem"
        self.public_key = self._key_pair()
        self.extra_audiences: set[str] = set()   # Experience Cloud site URLs
        self.accept_my_domain_audience = False
        self.refuse_logins = False            # every login fails (token endpoint and SOAP)
        self.sessions_die_on_arrival = False  # logins succeed but their tokens are already dead
        self.logins = 0

    def _key_pair(self):
        """The JWT signing key: generated once per data_dir, public half registered with the app."""
        if self.private_key_path.exists():
            private = serialization.load_pem_private_key(self.private_key_path.read_bytes(), password=None)
        else:
            private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            self.private_key_path.parent.mkdir(parents=True, exist_ok=True)
            self.private_key_path.write_bytes(private.private_bytes(serialization.Encoding.PEM,
                                                                    serialization.PrivateFormat.PKCS8,
                                                                    serialization.NoEncryption()))
            self.private_key_path.chmod(0o600)
        public = private.public_key()
        self.public_key_path.write_bytes(public.public_bytes(serialization.Encoding.PEM,
                                                             serialization.PublicFormat.SubjectPublicKeyInfo))
        return public

    # -- sessions ---------------------------------------------------------------------

    def new_session(self) -> str:
        token = f"{self.organization_id[:15]}!" + secrets.token_urlsafe(72)
        with self._lock:
            self.logins += 1
            self.sessions[token] = Session(self.user_id, self.clock.now() + timedelta(seconds=self.session_seconds),
                                           dead=self.sessions_die_on_arrival)
        return token

    def check(self, authorization: str | None) -> Session | None:
        """The live session for a ``Bearer`` header (activity extends it), or None."""
        if not authorization or not authorization.startswith("Bearer "):
            return None
        with self._lock:
            session = self.sessions.get(authorization[7:].strip())
            now = self.clock.now()
            if session is None or session.dead or now >= session.expires_at:
                return None
            session.expires_at = now + timedelta(seconds=self.session_seconds)
            return session

    def expire_all(self) -> None:
        with self._lock:
            for session in self.sessions.values():
                session.dead = True

    # -- OAuth 2.0 --------------------------------------------------------------------

    def token_grant(self, form: dict[str, str], basic: tuple[str, str] | None, audiences: set[str]) -> str:
        """Validate a token request; returns a new access token or raises OAuthError."""
        grant = form.get("grant_type", "")
        client_id = basic[0] if basic else form.get("client_id", "")
        client_secret = basic[1] if basic else form.get("client_secret", "")
        if grant == "client_credentials":
            self._client(client_id, client_secret)
        elif grant == "refresh_token":
            self._client(client_id, client_secret, secret_required=False)
            if form.get("refresh_token") not in self.refresh_tokens:
                raise OAuthError("invalid_grant", "expired access/refresh token")
        elif grant == "password":
            self._client(client_id, client_secret)
            if form.get("username") != self.username or not hmac.compare_digest(
                    form.get("password", ""), self.password + self.security_token) and not hmac.compare_digest(
                    form.get("password", ""), self.password):
                raise OAuthError("invalid_grant", "authentication failure")
        elif grant == JWT_GRANT:
            self._jwt(form.get("assertion", ""), audiences)
        else:
            raise OAuthError("unsupported_grant_type", "grant type not supported")
        if self.refuse_logins:
            raise OAuthError("invalid_grant", "authentication failure")
        return self.new_session()

    def _client(self, client_id: str, client_secret: str, secret_required: bool = True) -> None:
        if client_id != self.client_id:
            raise OAuthError("invalid_client_id", "client identifier invalid")
        if (secret_required or client_secret) and not hmac.compare_digest(client_secret, self.client_secret):
            raise OAuthError("invalid_client", "invalid client credentials")

    def _jwt(self, assertion: str, audiences: set[str]) -> None:
        try:
            unverified = jwt.decode(assertion, options={"verify_signature": False})
        except jwt.PyJWTError:
            raise OAuthError("invalid_grant", "invalid assertion") from None
        if unverified.get("iss") != self.client_id:
            raise OAuthError("invalid_client_id", "client identifier invalid")
        try:
            claims = jwt.decode(assertion, self.public_key, algorithms=["RS256"], audience=sorted(audiences),
                                options={"require": ["iss", "sub", "aud", "exp"]})
        except jwt.ExpiredSignatureError:
            raise OAuthError("invalid_grant", "expired authorization code") from None
        except (jwt.InvalidAudienceError, jwt.MissingRequiredClaimError) as exc:
            if isinstance(exc, jwt.MissingRequiredClaimError) and exc.claim != "aud":
                raise OAuthError("invalid_grant", "invalid assertion") from None
            raise OAuthError("invalid_grant", "audience is invalid") from None
        except jwt.PyJWTError:
            raise OAuthError("invalid_grant", "invalid assertion") from None
        # Clients sign with the real clock (simple-salesforce: exp = now + 3 min), so exp is checked against it.
        if float(claims["exp"]) > time.time() + JWT_MAX_LIFETIME:  # simple-salesforce sends exp as a string
            raise OAuthError("invalid_grant", "invalid assertion")
        if claims["sub"] != self.username:
            raise OAuthError("invalid_grant", "user hasn't approved this consumer")

    def token_body(self, token: str, instance_url: str) -> dict[str, Any]:
        """The success body; ``signature`` is HMAC-SHA256(client secret, id + issued_at), base64."""
        identity = f"{instance_url}/id/{self.organization_id}/{self.user_id}"
        issued_at = str(int(self.clock.now().timestamp() * 1000))
        signature = base64.b64encode(hmac.new(self.client_secret.encode(), (identity + issued_at).encode(),
                                              hashlib.sha256).digest()).decode()
        return {"access_token": token, "signature": signature, "scope": "api", "instance_url": instance_url,
                "id": identity, "token_type": "Bearer", "issued_at": issued_at}

    # -- SOAP login -------------------------------------------------------------------

    def soap_login(self, body: bytes, version: str) -> str:
        """The session id for a valid SOAP ``login()`` request (raises SoapFault)."""
        if self.soap_login_max_version is not None and float(version) > self.soap_login_max_version:
            raise SoapFault("UNSUPPORTED_API_VERSION",
                            f"login() is not available in API version {version}; use OAuth 2.0 instead")
        try:
            root = ElementTree.fromstring(body)
        except ElementTree.ParseError:
            raise SoapFault("INVALID_LOGIN", "Invalid username, password, security token; or user locked out.") \
                from None
        values = {element.tag.rpartition("}")[2]: element.text or "" for element in root.iter()}
        password = values.get("password", "")
        valid = values.get("username") == self.username and (
            hmac.compare_digest(password, self.password + self.security_token)
            or hmac.compare_digest(password, self.password))
        if not valid or self.refuse_logins:
            raise SoapFault("INVALID_LOGIN", "Invalid username, password, security token; or user locked out.")
        return self.new_session()


SOAP_LOGIN_OK = """<?xml version="1.0" encoding="UTF-8"?>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns="urn:partner.soap.sforce.com" \
xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body><loginResponse><result>\
<metadataServerUrl>{url}/services/Soap/m/{version}/{org}</metadataServerUrl>\
<passwordExpired>false</passwordExpired><sandbox>true</sandbox>\
<serverUrl>{url}/services/Soap/u/{version}/{org}</serverUrl>\
<sessionId>{session}</sessionId><userId>{user}</userId><userInfo>\
<currencySymbol xsi:nil="true"/><orgAttachmentFileSizeLimit>5242880</orgAttachmentFileSizeLimit>\
<orgDefaultCurrencyIsoCode>{currency}</orgDefaultCurrencyIsoCode><orgDisallowHtmlAttachments>false\
</orgDisallowHtmlAttachments><orgHasPersonAccounts>false</orgHasPersonAccounts>\
<organizationId>{org}</organizationId><organizationMultiCurrency>{multi}</organizationMultiCurrency>\
<organizationName>closedloop Sandbox</organizationName><profileId>00e000000000000AAA</profileId>\
<roleId xsi:nil="true"/><sessionSecondsValid>{seconds}</sessionSecondsValid>\
<userDefaultCurrencyIsoCode xsi:nil="true"/><userEmail>{username}</userEmail>\
<userFullName>closedloop Integration</userFullName><userId>{user}</userId><userLanguage>en_US</userLanguage>\
<userLocale>en_US</userLocale><userName>{username}</userName><userTimeZone>UTC</userTimeZone>\
<userType>Standard</userType><userUiSkin>Theme3</userUiSkin></userInfo></result></loginResponse></soapenv:Body>\
</soapenv:Envelope>"""

SOAP_FAULT = """<?xml version="1.0" encoding="UTF-8"?>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" \
xmlns:sf="urn:fault.partner.soap.sforce.com" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body>\
<soapenv:Fault><faultcode>{code}</faultcode><faultstring>{code}: {message}</faultstring><detail>\
<sf:LoginFault xsi:type="sf:LoginFault"><sf:exceptionCode>{code}</sf:exceptionCode>\
<sf:exceptionMessage>{message}</sf:exceptionMessage></sf:LoginFault></detail></soapenv:Fault></soapenv:Body>\
</soapenv:Envelope>"""


def soap_fault(fault: SoapFault) -> str:
    return SOAP_FAULT.format(code=escape(fault.code), message=escape(fault.message))
