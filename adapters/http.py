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
