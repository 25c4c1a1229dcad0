"""Normalising and hashing the identifiers that stitch a visitor to a person.

An email address is never stored in clear: it is normalised (trimmed, lower-cased) and
hashed with SHA-256 on arrival, and the same function hashes the email on a CRM record, so
the two meet as equal hashes.
"""
from __future__ import annotations

import hashlib
import re

_GA_CLIENT_ID = re.compile(r"^(?:GA[0-9]+\.[0-9]+\.)?([0-9]{1,20}\.[0-9]{1,20})$")  # ASCII digits only
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def normalise_email(value: str) -> str | None:
    """Trimmed and lower-cased, or None when it is not an email address."""
    email = value.strip().lower()
    return email if _EMAIL.match(email) and len(email) <= 254 else None


def hash_email(value: str) -> str | None:
    """SHA-256 hex of the normalised address (None when it is not an address)."""
    email = normalise_email(value)
    return hashlib.sha256(email.encode("utf-8")).hexdigest() if email else None


def normalise_phone(value: str) -> str | None:
    """E.164-style: ``+`` and digits only; None when too short to be a phone number."""
    digits = re.sub(r"\D", "", value)
    return f"+{digits}" if 7 <= len(digits) <= 15 else None


def hash_phone(value: str) -> str | None:
    phone = normalise_phone(value)
    return hashlib.sha256(phone.encode("utf-8")).hexdigest() if phone else None


def normalise_ga_client_id(value: str) -> str | None:
    """The ``x.y`` client id GA4 wants, from a bare id or a whole ``_ga`` cookie value
    (``GA1.1.123456789.1700000000``); None for anything else (a UUID would create a new,
    sourceless GA4 user)."""
    match = _GA_CLIENT_ID.match(value.strip())
    if not match:
        return None
    first, second = match.group(1).split(".")
    return match.group(1) if int(first) > 0 and int(second) > 0 else None


def google_email_hash(value: str) -> str | None:
    """SHA-256 hex of the address as Google's ``user_data`` wants it: trimmed, lower-cased, and
    without dots before ``@gmail.com`` (GA4 Measurement Protocol user-provided data)."""
    email = normalise_email(value)
    if email is None:
        return None
    local, _, domain = email.partition("@")
    if domain in ("gmail.com", "googlemail.com"):
        local = local.replace(".", "")
    return hashlib.sha256(f"{local}@{domain}".encode("utf-8")).hexdigest()
