"""What the emulated Google APIs share: OAuth 2.0 for service accounts and the error model.

- ``oauth.py``: :class:`GoogleOAuth`, the token endpoint (service-account JWT-bearer grant) and
  the check each API makes of ``Authorization: Bearer`` (issued access tokens and self-signed
  JWTs, expiry, scopes). One instance is shared by the Data Manager emulator
  (``sandbox.google_ads``) and the GA4 Data API (``sandbox.ga4``), as Google's one identity
  service stands in front of all its APIs.
- ``status.py``: :class:`ApiError`, Google's ``google.rpc.Status`` JSON with ``ErrorInfo``,
  ``BadRequest`` and ``RequestInfo`` details.
"""
from sandbox.googleapis.oauth import GoogleOAuth, GoogleService, Principal
from sandbox.googleapis.status import ApiError, FieldViolation

__all__ = ["ApiError", "FieldViolation", "GoogleOAuth", "GoogleService", "Principal"]
