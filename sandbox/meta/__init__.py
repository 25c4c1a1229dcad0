"""Meta's Conversions API on loopback HTTPS, for plain HTTPS senders and for facebook-business.

Start :class:`MetaSandbox`; its ``url`` stands for ``https://graph.facebook.com``::

    POST {url}/v26.0/{dataset_id}/events   access_token, data (≤ 1,000 events), test_event_code?
         → 200 {"events_received": n, "messages": [], "fbtrace_id": "..."} | a Graph error
    GET  {url}/v26.0/{dataset_id}?fields=id,name   → the dataset, if the token may see it

Plain HTTPS (closedloop's own plumbing)::

    requests.post(f"{sandbox.url}/v26.0/{DATASET_ID}/events", verify=sandbox.ca_path,
                  json={"data": [event], "access_token": token})

facebook-business 26.x (its ``FacebookSession.GRAPH`` is per session and its requests session
verifies against a CA file of its own, so both are set on the session — and ``trust_env`` off,
or a ``REQUESTS_CA_BUNDLE`` in the environment wins over ``verify``; ``EventRequest`` uses the
process-wide default API)::

    session = FacebookSession(access_token=token)
    session.GRAPH = sandbox.url
    session.requests.verify = str(sandbox.ca_path)
    session.requests.trust_env = False
    FacebookAdsApi.set_default_api(FacebookAdsApi(session, api_version="v26.0"))
    EventRequest(pixel_id=DATASET_ID, events=[...], test_event_code=...).execute()

Facts and their sources: graph.py (envelope, errors), events.py (what is refused),
datasets.py (dedup, test events, matching). Seeded: dataset ``DATASET_ID`` and the system-user
token ``ACCESS_TOKEN`` for it; ``OTHER_DATASET_ID`` exists but the token may not see it.
Control in Python and under ``/_sandbox/...`` (``app.py``): tokens, clicks Meta served, people
it knows, received events (production and test), the request log (tokens redacted), faults,
outage, reset. Supported Graph versions: ``MIN_VERSION``..``MAX_VERSION``.
"""
from __future__ import annotations

import hashlib
import hmac
import re
import threading
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

from sandbox.clock import Clock
from sandbox.control import AdPlatformControls
from sandbox.faults import OUTAGE, FaultPlan
from sandbox.identity import PeopleIndex
from sandbox.meta.app import build_router
from sandbox.meta.datasets import META_FORMS, META_MISTAKES, Dataset, FacebookClick, Token
from sandbox.meta.events import check_events, parse_data
from sandbox.meta.graph import (GraphError, bad_token, expired_token, fbtrace_id, graph_response, missing_token,
                                params, unsupported)
from sandbox.tls import make_tls_files
from sandbox.web import DropConnection, Request, Response, ServedApp

__all__ = ["MetaSandbox", "ACCESS_TOKEN", "DATASET_ID", "OTHER_DATASET_ID", "MAX_VERSION", "MIN_VERSION",
           "FAULT_KINDS"]

DATASET_ID = "1234567890123456"
OTHER_DATASET_ID = "6543210987654321"
ACCESS_TOKEN = "EAAGsandboxSystemUserToken0closedloop0000000000000000000001"
MIN_VERSION, MAX_VERSION = (21, 0), (26, 0)
REDACTED = "***"
FAULT_KINDS = {
    "rate_limit": GraphError(400, "(#4) Application request limit reached", 4, transient=True),
    "user_rate_limit": GraphError(400, "(#17) User request limit reached", 17, transient=True),
    "unavailable": GraphError(500, "An unexpected error has occurred. Please retry your request later.", 2,
                              transient=True),
    "unknown": GraphError(500, "An unknown error has occurred.", 1, transient=True),
    "drop": None, "lost_response": None,
}
_VERSION = re.compile(r"v(\d+)\.(\d+)")


class MetaSandbox(AdPlatformControls, ServedApp):
    """One Meta Business account's datasets behind an emulated Graph API (HTTPS by default).

    Options: ``data_dir`` (TLS files), ``clock``, ``tls`` (False serves plain HTTP).
    """

    server_name = "meta"

    def __init__(self, *, data_dir: Path, clock: Clock | None = None, tls: bool = True) -> None:
        self.data_dir = Path(data_dir)
        self.clock = clock or Clock()
        self.tls = make_tls_files(self.data_dir / "tls") if tls else None
        self.lock = threading.RLock()
        self.router = build_router(self)
        self._seed()

    def _seed(self) -> None:
        self.datasets = {DATASET_ID: Dataset(DATASET_ID, "closedloop sandbox dataset"),
                         OTHER_DATASET_ID: Dataset(OTHER_DATASET_ID, "another business's dataset")}
        self.tokens = {ACCESS_TOKEN: Token(ACCESS_TOKEN, {DATASET_ID})}
        self.clicks: dict[str, FacebookClick] = {}
        self.people = PeopleIndex(META_FORMS, META_MISTAKES)
        self.log: list[dict[str, Any]] = []
        self.faults = FaultPlan(FAULT_KINDS, self.clock)

    # -- serving (``url`` stands for ``https://graph.facebook.com``, no version) ------------------

    @property
    def credentials(self) -> dict[str, Any]:
        return {"access_token": ACCESS_TOKEN, "dataset_id": DATASET_ID, "graph_url": self.url,
                "api_version": "v%d.%d" % MAX_VERSION, "ca_path": str(self.ca_path) if self.ca_path else None}

    def __call__(self, request: Request) -> Response:
        handler = self.router.resolve(request)
        if handler is None:
            trace = fbtrace_id()
            return GraphError(400, f"Unknown path components: {request.path}", 2500).response(
                trace, "v%d.%d" % MAX_VERSION)
        return handler(request)

    # -- the API ------------------------------------------------------------------------

    def handle_events(self, request: Request) -> Response:
        return self._api(request, "POST", self._post_events)

    def handle_dataset(self, request: Request) -> Response:
        return self._api(request, "GET", self._get_dataset)

    def _api(self, request: Request, method: str, action) -> Response:
        trace = fbtrace_id()
        version = request.path_params["version"]
        with self.lock:
            entry = {"method": request.method, "path": request.path, "at": self.clock.now().isoformat(),
                     "fbtrace_id": trace, "status": None}
            self.log.append(entry)
            try:
                fault = self._take_fault(entry)
                self._check_version(version)
                values = params(request)
                entry["params"] = {key: (REDACTED if key in ("access_token", "appsecret_proof") else value)
                                   for key, value in values.items()}
                dataset = self._authorise(values, request.path_params["object_id"], method)
                body = action(dataset, values, trace)
            except GraphError as error:
                entry.update(status=error.status, code=error.code, subcode=error.subcode, message=error.message,
                             user_title=error.user_title, user_msg=error.user_msg)
                return error.response(trace, version)
            entry["status"] = 200
            if fault == "lost_response":
                raise DropConnection()
            return graph_response(body, trace, version)

    def _take_fault(self, entry: dict[str, Any]) -> str | None:
        kind = self.faults.take()
        if kind is None:
            return None
        entry["fault"] = kind
        if kind == OUTAGE:
            raise replace(FAULT_KINDS["unavailable"])
        if kind == "drop":
            raise DropConnection()
        if kind == "lost_response":
            return kind
        raise replace(FAULT_KINDS[kind])

    @staticmethod
    def _check_version(version: str) -> None:
        match = _VERSION.fullmatch(version)
        number = (int(match.group(1)), int(match.group(2))) if match else None
        if number is None or number > MAX_VERSION:
            raise GraphError(400, f"Unknown path components: /{version}", 2500)
        if number < MIN_VERSION:
            raise GraphError(400, f"(#2635) You are calling a deprecated version of the Graph API. Please update to "
                                  f"the latest version: v{MAX_VERSION[0]}.{MAX_VERSION[1]}.", 2635)

    def _authorise(self, values: dict[str, Any], object_id: str, method: str) -> Dataset:
        token_value = values.get("access_token")
        if not token_value:
            raise missing_token()
        token = self.tokens.get(str(token_value))
        if token is None:
            raise bad_token()
        now = self.clock.now()
        if token.expires_at is not None and now >= token.expires_at:
            raise expired_token(_fb_time(token.expires_at), _fb_time(now))
        if token.app_secret:
            proof = values.get("appsecret_proof")
            if proof is None and token.require_proof:
                raise GraphError(400, "API calls from the server require an appsecret_proof argument", 100,
                                 "GraphMethodException")
            if proof is not None and proof != _proof(token.app_secret, token.value):
                raise GraphError(400, "Invalid appsecret_proof provided in the API argument", 100,
                                 "GraphMethodException")
        dataset = self.datasets.get(object_id)
        if dataset is None or object_id not in token.datasets:
            raise unsupported(method, object_id)
        return dataset

    def _post_events(self, dataset: Dataset, values: dict[str, Any], trace: str) -> dict[str, Any]:
        now = self.clock.now()
        checked = check_events(parse_data(values.get("data")), now)
        test_code = values.get("test_event_code") or None
        dataset.receive(checked, now, trace, test_code, self.people, self.clicks)
        return {"events_received": len(checked), "messages": [], "fbtrace_id": trace}

    @staticmethod
    def _get_dataset(dataset: Dataset, values: dict[str, Any], trace: str) -> dict[str, Any]:
        wanted = [name.strip() for name in str(values.get("fields") or "id,name").split(",") if name.strip()]
        known = {"id": dataset.id, "name": dataset.name, "is_unavailable": False}
        for name in wanted:
            if name not in known:
                raise GraphError(400, f"(#100) Tried accessing nonexisting field ({name}) on node type (AdsPixel)",
                                 100)
        return {name: known[name] for name in wanted} | {"id": dataset.id}

    # -- control ------------------------------------------------------------------------

    def add_token(self, token: str, datasets: list[str] | None = None, *, expires_at: datetime | None = None,
                  app_secret: str | None = None, require_proof: bool = False) -> None:
        """A system-user token with access to ``datasets`` (default: none)."""
        with self.lock:
            self.tokens[token] = Token(token, set(datasets or ()), expires_at, app_secret, require_proof)

    def expire_token(self, token: str = ACCESS_TOKEN) -> None:
        with self.lock:
            self.tokens[token].expires_at = self.clock.now()

    def add_dataset(self, dataset_id: str, name: str = "", *, grant: str | None = ACCESS_TOKEN) -> None:
        with self.lock:
            self.datasets.setdefault(dataset_id, Dataset(dataset_id, name or f"dataset {dataset_id}"))
            if grant:
                self.tokens[grant].datasets.add(dataset_id)

    def record_click(self, fbclid: str, *, at: datetime | None = None, campaign: str = "") -> FacebookClick:
        """Meta served this ad click: a visitor landed with ``?fbclid=...`` (default: now)."""
        with self.lock:
            click = self.clicks[fbclid] = FacebookClick(fbclid, at or self.clock.now(), campaign)
            return click

    def events(self, dataset_id: str = DATASET_ID, *, test: bool = False, counted_only: bool = False) -> list[dict]:
        """What the dataset received ("what Meta received"): production events, or Test Events."""
        with self.lock:
            dataset = self.datasets[dataset_id]
            stored = dataset.test_events if test else dataset.events
            return [event.as_json() for event in stored if event.counted or not counted_only]

    def request_log(self) -> list[dict[str, Any]]:
        """Every API call with its parameters (access_token and appsecret_proof redacted), status
        and Graph error fields."""
        with self.lock:
            return [dict(entry) for entry in self.log]

    def describe(self) -> dict[str, Any]:
        with self.lock:
            return {"datasets": [{"id": d.id, "name": d.name, "events": len(d.events),
                                  "test_events": len(d.test_events)} for d in self.datasets.values()],
                    "tokens": [{"token": token.value[:8] + "…", "datasets": sorted(token.datasets),
                                "expires_at": token.expires_at.isoformat() if token.expires_at else None}
                               for token in self.tokens.values()],
                    "clicks": [{"fbclid": c.fbclid, "at": c.at.isoformat(), "campaign": c.campaign}
                               for c in self.clicks.values()],
                    "people": [person.as_json() for person in self.people.people]}

    def reset(self) -> None:
        """Back to the seeded datasets and token; no events, clicks, people, faults or log."""
        with self.lock:
            self._seed()


def _fb_time(moment: datetime) -> str:
    return moment.strftime("%A, %d-%b-%y %H:%M:%S UTC")


def _proof(app_secret: str, token: str) -> str:
    return hmac.new(app_secret.encode(), token.encode(), hashlib.sha256).hexdigest()
