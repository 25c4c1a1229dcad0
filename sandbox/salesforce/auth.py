"""Salesforce authentication: OAuth 2.0 token grants, SOAP login, and session tokens.

Shapes from reference §1: token JSON ``{access_token, instance_url, id, token_type,
issued_at, signature, scope}``; failures HTTP 400 ``{"error", "error_description"}``; SOAP
login answers default-namespace ``sessionId``/``serverUrl`` or a 500 ``INVALID_LOGIN`` fault.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from sandbox.clock import Clock

JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"


@dataclass
class Session:
    user_id: str
    expires_at: datetime
    dead: bool = False


class OAuthError(Exception):
    def __init__(self, error: str, description: str) -> None:
        super().__init__(description)
        self.error, self.description = error, description


class Authority:
    """The connected app, the integration user's credentials, and live sessions."""

    def __init__(self, data_dir: Path, clock: Clock, user_id: str, session_seconds: int) -> None:
        self.clock, self.user_id, self.session_seconds = clock, user_id, session_seconds
        self._lock = threading.Lock()
        self.sessions: dict[str, Session] = {}
        self.client_id = "3MVG9sandbox.closedloop.consumer.key"
        self.client_secret = "sandbox-consumer-secret-4f1c"
        self.username = "integration@closedloop.sandbox"
        self.password = "sandbox-password"
        self.security_token = "sandboxtoken"
        self.refresh_tokens = {"5Aep861sandboxRefreshToken000001"}
        self.private_key_path = data_dir / "jwt_private_key.pem"
        self.public_key = self._key_pair(data_dir)
        self.refuse_logins = False
        self.sessions_die_on_arrival = False  # "keep rejecting after re-login"
        self.soap_max_version = 64.0
        self.logins = 0

    def _key_pair(self, data_dir: Path):
        if self.private_key_path.exists():
            private = serialization.load_pem_private_key(self.private_key_path.read_bytes(), password=None)
        else:
            private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            data_dir.mkdir(parents=True, exist_ok=True)
            self.private_key_path.write_bytes(private.private_bytes(serialization.Encoding.PEM,
                                                                    serialization.PrivateFormat.PKCS8,
                                                                    serialization.NoEncryption()))
        return private.public_key()

    def new_session(self) -> str:
        token = "00D5g000004SbxA!" + secrets.token_urlsafe(72)
        with self._lock:
            self.logins += 1
            self.sessions[token] = Session(self.user_id, self.clock.now() + timedelta(seconds=self.session_seconds),
                                           dead=self.sessions_die_on_arrival)
        return token

    def check(self, authorization: str | None) -> Session | None:
        if not authorization or not authorization.startswith("Bearer "):
            return None
        session = self.sessions.get(authorization[7:].strip())
        if session is None or session.dead or self.clock.now() >= session.expires_at:
            return None
        return session

    def expire_all(self) -> None:
        with self._lock:
            for session in self.sessions.values():
                session.dead = True

    def token_grant(self, form: dict[str, str], basic: tuple[str, str] | None, audiences: set[str]) -> str:
        """Validate a token request; returns a new access token or raises OAuthError."""
        if self.refuse_logins:
            raise OAuthError("invalid_grant", "authentication failure")
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
            if form.get("username") != self.username or form.get("password") not in (
                    self.password, self.password + self.security_token):
                raise OAuthError("invalid_grant", "authentication failure")
        elif grant == JWT_GRANT:
            self._jwt(form.get("assertion", ""), audiences)
        else:
            raise OAuthError("unsupported_grant_type", "grant type not supported")
        return self.new_session()

    def _client(self, client_id: str, client_secret: str, secret_required: bool = True) -> None:
        if client_id != self.client_id:
            raise OAuthError("invalid_client_id", "client identifier invalid")
        if (secret_required or client_secret) and not hmac.compare_digest(client_secret, self.client_secret):
            raise OAuthError("invalid_client", "invalid client credentials")

    def _jwt(self, assertion: str, audiences: set[str]) -> None:
        try:
            claims = jwt.decode(assertion, self.public_key, algorithms=["RS256"], audience=list(audiences),
                                options={"require": ["iss", "sub", "aud", "exp"]},
                                leeway=0)
        except jwt.ExpiredSignatureError:
            raise OAuthError("invalid_grant", "expired authorization code") from None
        except jwt.InvalidAudienceError:
            raise OAuthError("invalid_grant", "audience is invalid") from None
        except jwt.PyJWTError:
            raise OAuthError("invalid_grant", "invalid assertion") from None
        if claims["iss"] != self.client_id:
            raise OAuthError("invalid_client_id", "client identifier invalid")
        if claims["sub"] != self.username:
            raise OAuthError("invalid_grant", "user hasn't approved this consumer")
        if claims["exp"] > time.time() + 300:
            raise OAuthError("invalid_grant", "invalid assertion")

    def soap_login(self, body: str, version: float) -> str | None:
        """The session id for a valid SOAP login request, or None."""
        if self.refuse_logins or version > self.soap_max_version:
            return None
        if f"<n1:username>{self.username}</n1:username>" not in body:
            return None
        if not any(f"<n1:password>{candidate}</n1:password>" in body
                   for candidate in (self.password + self.security_token, self.password)):
            return None
        return self.new_session()

    @staticmethod
    def signature(access_token: str) -> str:
        return base64.b64encode(hashlib.sha256(access_token.encode()).digest()).decode()

    def token_body(self, token: str, instance_url: str) -> dict[str, Any]:
        return {"access_token": token, "instance_url": instance_url,
                "id": f"{instance_url}/id/00D5g000004SbxAEAS/{self.user_id}", "token_type": "Bearer",
                "issued_at": str(int(self.clock.now().timestamp() * 1000)), "signature": self.signature(token),
                "scope": "api"}
