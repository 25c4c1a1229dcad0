"""Logging set-up: human-readable or JSON lines, and secrets redacted from every line.

Redaction happens on the fully formatted record (message, arguments and traceback), so a
secret cannot slip through an exception message, a URL in a third-party library's log, or a
repr. Two layers: the exact secret values read from the environment, and patterns for things
that look like credentials wherever they come from (``api_secret=`` in a URL, Bearer tokens,
passwords in connection strings, OAuth fields).
"""
from __future__ import annotations

import json
import logging
import re
import sys
import threading
from datetime import datetime, timezone
from typing import Iterable

REDACTED = "***"

_PATTERNS = [
    # query strings and form bodies: api_secret=..., access_token=..., client_secret=...
    (re.compile(r"(?i)\b(api_secret|access_token|refresh_token|client_secret|password|assertion|"
                r"security_token)=([^&\s\"']+)"), r"\1=" + REDACTED),
    # JSON fields
    (re.compile(r"(?i)(\"(?:api_secret|access_token|refresh_token|client_secret|password|assertion)\"\s*:\s*\")"
                r"[^\"]*(\")"), r"\1" + REDACTED + r"\2"),
    (re.compile(r"(?i)\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=!-]{8,}"), r"\1 " + REDACTED),
    # user:password@host in URLs and DSNs
    (re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^/\s:@]+):[^@\s/]+@"), r"\1:" + REDACTED + "@"),
    (re.compile(r"(?i)<(sessionId|password)>[^<]*</"), r"<\1>" + REDACTED + "</"),
]


class Redactor:
    """Removes known secret values and credential-shaped strings from text."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._lock = threading.Lock()
        self._secrets: list[str] = []
        self.add(secrets)

    def add(self, secrets: Iterable[str]) -> None:
        with self._lock:
            merged = set(self._secrets) | {s for s in secrets if s and len(s) >= 4}
            # Longest first, so a secret containing another is removed whole.
            self._secrets = sorted(merged, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        for pattern, replacement in _PATTERNS:
            text = pattern.sub(replacement, text)
        return text


redactor = Redactor()


def redact(text: str) -> str:
    """Redact ``text`` with the process-wide redactor (secrets registered at start-up)."""
    return redactor(text)


class _RedactingFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return redactor(super().format(record))


class _JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, message, exception, and ``extra`` fields."""

    _standard = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in self._standard and not key.startswith("_"):
                entry[key] = value if isinstance(value, (str, int, float, bool, type(None))) else str(value)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return redactor(json.dumps(entry, ensure_ascii=False))


def configure_logging(level: str = "INFO", fmt: str = "text", secrets: Iterable[str] = (),
                      stream=None) -> None:
    """Route all logging through one redacting handler on stderr."""
    redactor.add(secrets)
    handler = logging.StreamHandler(stream or sys.stderr)
    if fmt == "json":
        handler.setFormatter(_JsonFormatter())
    else:
        handler.setFormatter(_RedactingFormatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s",
                                                 datefmt="%Y-%m-%dT%H:%M:%S"))
    root = logging.getLogger()
    for existing in list(root.handlers):
        if getattr(existing, "_closedloop", False):
            root.removeHandler(existing)
    handler._closedloop = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)
    # Third-party chatter that would otherwise print full request URLs at DEBUG.
    for noisy in ("urllib3", "apscheduler.executors", "apscheduler.scheduler", "uvicorn.access", "alembic"):
        logging.getLogger(noisy).setLevel(max(logging.getLevelName(level), logging.WARNING))


def json_logging() -> bool:
    """Whether closedloop's log handler writes JSON lines (where tracebacks belong)."""
    return any(getattr(handler, "_closedloop", False) and isinstance(handler.formatter, _JsonFormatter)
               for handler in logging.getLogger().handlers)
