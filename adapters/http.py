"""HTTP plumbing shared by the adapters: sessions with timeouts, trusted CAs and call counting."""
from __future__ import annotations

import threading
from collections import Counter
from typing import Callable

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import NewConnectionError


class _TimeoutAdapter(HTTPAdapter):
    """Every request gets a timeout, even from library code that passes none (simple-salesforce's
    ``SFType`` calls accept no ``timeout``), so nothing can hang forever."""

    def __init__(self, timeout: float, **kwargs) -> None:
        self.timeout = timeout
        super().__init__(**kwargs)

    def send(self, request, **kwargs):
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self.timeout
        return super().send(request, **kwargs)


class CallCounter:
    """Counts API calls per system (for metrics, budgets and the API-calls-per-record tests).

    ``listener(system, n)`` hears every count, e.g. to feed a Prometheus counter, without the
    adapters knowing about the daemon's metrics."""

    def __init__(self, listener: Callable[[str, int], None] | None = None) -> None:
        self._lock = threading.Lock()
        self.counts: Counter[str] = Counter()
        self.listener = listener

    def add(self, system: str, n: int = 1) -> None:
        with self._lock:
            self.counts[system] += n
        if self.listener is not None:
            self.listener(system, n)

    def __getitem__(self, system: str) -> int:
        return self.counts[system]


def make_session(*, timeout: float, ca_bundle: str | None = None, counter: CallCounter | None = None,
                 system: str = "") -> requests.Session:
    """A requests session that always times out, trusts ``ca_bundle`` (ignoring
    REQUESTS_CA_BUNDLE, which would silently override it) and counts its calls."""
    return configure_session(requests.Session(), timeout=timeout, ca_bundle=ca_bundle, counter=counter,
                             system=system)


def configure_session(session: requests.Session, *, timeout: float, ca_bundle: str | None = None,
                      counter: CallCounter | None = None, system: str = "") -> requests.Session:
    """The same, for a session a client library made itself (google-auth's ``AuthorizedSession``)."""
    session.trust_env = False
    session.verify = ca_bundle or True
    adapter = _TimeoutAdapter(timeout, pool_maxsize=8)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    if counter is not None:
        session.hooks["response"].append(lambda response, *args, **kwargs: counter.add(system))
    return session


def never_connected(error: requests.RequestException) -> bool:
    """True when the request cannot have reached the server (no connection was made), so resending
    it cannot duplicate anything; any other failure may have come after the server acted."""
    if isinstance(error, requests.ConnectTimeout):
        return True
    reason = getattr(error.args[0], "reason", None) if error.args else None
    return isinstance(error, requests.ConnectionError) and isinstance(reason, NewConnectionError)


_REASONS = (  # (words in the error or its causes, what a person reads), first match wins
    (("certificate verify failed", "sslcertverificationerror", "sslerror"),
     "the TLS certificate is not trusted (ca_bundle?)"),
    (("name or service not known", "nodename nor servname", "nameresolutionerror", "temporary failure in name",
      "failed to resolve", "getaddrinfo failed"), "host not found"),
    (("connection refused",), "connection refused"),
    (("connecttimeout", "connect timeout", "timed out connecting"), "no connection within the timeout"),
    (("readtimeout", "read timed out", "timeout"), "no answer within the timeout"),
    (("connection reset", "connection aborted", "remotedisconnected", "protocolerror", "broken pipe"),
     "the connection broke"),
    (("network is unreachable", "no route to host"), "network unreachable"),
)


def connection_problem(error: BaseException) -> str:
    """What went wrong with a connection, in words (``connection refused``, ``host not found``,
    ``no connection within the timeout`` ...), from a requests or urllib3 error and its causes."""
    seen, texts, current = set(), [], error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        texts.append(f"{type(current).__name__} {current}".lower())
        reason = getattr(current, "reason", None)
        current = reason if isinstance(reason, BaseException) else (current.__cause__ or current.__context__)
    text = " ".join(texts)
    for words, meaning in _REASONS:
        if any(word in text for word in words):
            return meaning
    return type(error).__name__
