"""HubSpot through hubspot-api-client: API objects built once, every call guarded and paced.

Every call goes through :meth:`HubSpotAdapter._call`, which

- paces itself from the ``X-HubSpot-RateLimit-*`` headers (the ten-second window, the search
  API's own per-second limit, the daily allowance) so HubSpot should never need to answer 429;
- passes ``_request_timeout`` (the client has none by default);
- classifies failures by HTTP status across all the client's generated packages (each has its
  own ``ApiException`` class) and urllib3's own errors, into closedloop's error tree;
- runs under the shared retry policy (urllib3's retries are switched off so the two layers do
  not multiply).

Incremental reads never use search offsets: each page asks again for records modified at or
after the newest one seen (a keyset window on ``lastmodifieddate``), so the 10,000-result cap
of the search API never applies, and a record that changes while we page simply comes back
later instead of shifting the offsets of others. When more than a page of records share one
millisecond (a bulk import), that millisecond is drained by ``hs_object_id``.
"""
from __future__ import annotations

import json
import logging
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation
from typing import Any, Callable, Iterator, TypeVar

from hubspot import HubSpot
from urllib3.exceptions import HTTPError as Urllib3Error
from urllib3.util.retry import Retry

from adapters.base import (Allowance, Deal, DealStage, FieldSpec, LeadRecord, LeadUpdate, NewField, PersonRef,
                           StageChange, WriteResult)
from adapters.errors import AuthError, BudgetExhausted, ConfigError, RateLimited, RemoteError, TransientError
from adapters.http import CallCounter, connection_problem, make_session
from adapters.hubspot_auth import HubSpotOAuth
from adapters.ratelimit import SlidingWindowLimiter
from adapters.retry import RetryPolicy

log = logging.getLogger(__name__)

T = TypeVar("T")
BATCH_LIMIT = 100
SEARCH_PAGE = 200
EXCLUDE_LIMIT = 100
BODY_LIMIT = 3000  # characters in a search request body (reference: hubspot-api.md, search)
ASSOCIATION_BATCH = 1000
MODIFIED = {"contacts": "lastmodifieddate", "deals": "hs_lastmodifieddate"}
DEAL_FIELDS = ["dealname", "dealstage", "amount", "deal_currency_code", "closedate", "pipeline"]
KIND_BY_TYPE = {"string": "string", "number": "number", "datetime": "datetime", "date": "date",
                "enumeration": "picklist", "bool": "boolean", "phone_number": "string"}
PROPERTY_TYPE = {"string": ("string", "text"), "number": ("number", "number"), "datetime": ("datetime", "date")}
GROUP = "closedloop"
TRANSIENT_STATUSES = {423, 477, 500, 502, 503, 504, 520, 521, 522, 524}


@dataclass(frozen=True)
class HubSpotCredentials:
    """A private-app/service-key token, or an OAuth app with a refresh token."""

    access_token: str = ""
    client_id: str = ""
    client_secret: str = ""
    refresh_token: str = ""

    def __repr__(self) -> str:
        return "HubSpotCredentials(***)"


class HubSpotAdapter:
    """One HubSpot account."""

    # Calls may come from several threads at once: the enrich poll reads the next page and
    # writes the last one while it computes this one (each API object has its own connection
    # pool; the limiters are thread-safe).
    concurrent_calls = True

    name = "hubspot"
    write_batch = BATCH_LIMIT

    def __init__(self, credentials: HubSpotCredentials, *, host: str = "https://api.hubapi.com",
                 ca_bundle: str | None = None, timeout: float = 30.0, max_daily_share: float = 0.5,
                 policy: RetryPolicy | None = None, counter: CallCounter | None = None,
                 won_stages: list[str] | None = None, company_currency: str = "", write_concurrency: int = 2,
                 sleep: Callable[[float], None] = time.sleep, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.credentials = credentials
        self.host = host.rstrip("/")
        self.timeout = (min(10.0, timeout), timeout)
        self.policy = policy or RetryPolicy(max_wait=15.0)
        self.counter = counter or CallCounter()
        self.allowance = Allowance(max_daily_share)
        self.configured_won_stages = list(won_stages or [])
        self.configured_currency = company_currency
        self.write_concurrency = max(1, write_concurrency)
        self.limiter = SlidingWindowLimiter(100, 10.0, clock=monotonic, sleep=sleep)
        # HubSpot allows 5 searches a second, counted on arrival: 5 per 1.1 s leaves room for jitter.
        self.search_limiter = SlidingWindowLimiter(5, 1.1, clock=monotonic, sleep=sleep)
        self._lock = threading.Lock()
        options: dict[str, Any] = {"host": self.host, "retry": Retry(total=0, raise_on_status=False)}
        if ca_bundle:
            options["ssl_ca_cert"] = ca_bundle
        self.oauth: HubSpotOAuth | None = None
        if not credentials.access_token:
            if not credentials.refresh_token:
                raise ConfigError("[hubspot] no access token and no refresh token configured")
            self.oauth = HubSpotOAuth(self.host, credentials.client_id, credentials.client_secret,
                                      credentials.refresh_token, timeout=timeout, policy=self.policy,
                                      monotonic=monotonic, http=make_session(
                                          timeout=timeout, ca_bundle=ca_bundle, counter=self.counter,
                                          system=self.name))
        self._token_in_use = credentials.access_token
        client = HubSpot(access_token=credentials.access_token or None, **options)
        # Each attribute access builds a new ApiClient and connection pool: build them once.
        self.api = {
            "contacts.search": client.crm.contacts.search_api, "contacts.batch": client.crm.contacts.batch_api,
            "deals.search": client.crm.deals.search_api, "deals.batch": client.crm.deals.batch_api,
            "properties": client.crm.properties.core_api, "groups": client.crm.properties.groups_api,
            "properties.batch": client.crm.properties.batch_api,
            "pipelines": client.crm.pipelines.pipelines_api, "associations": client.crm.associations.v4.batch_api,
        }
        self._describe_cache: dict[str, dict[str, FieldSpec]] = {}
        self._deleted: dict[str, frozenset[str]] = {}  # properties HubSpot said were deleted, per object
        self._won_stages: set[str] | None = None
        self._closed_stages: set[str] = set()
        self._stage_labels: dict[str, str] = {}
        self._stage_order: list[DealStage] = []

    # -- the guarded call ---------------------------------------------------------------

    def _call(self, what: str, api: str, method: str, *args: Any, search: bool = False, raw: bool = False,
              **kwargs: Any) -> Any:
        """Call ``self.api[api].<method>_with_http_info``; returns ``(data, status)``.

        ``raw=True`` skips the client's model deserialisation (it parses every timestamp with
        dateutil, the bulk of the CPU on a large sync) and returns the decoded JSON body."""
        def once(token: str):
            (self.search_limiter if search else self.limiter).acquire()
            function = getattr(self.api[api], f"{method}_with_http_info")
            self.counter.add(self.name)
            try:
                if raw:
                    response = function(*args, _request_timeout=self.timeout, _preload_content=False, **kwargs)
                    body = response.data
                    response.release_conn()
                    data, status, headers = _json(body), response.status, response.headers
                else:
                    data, status, headers = function(*args, _request_timeout=self.timeout, **kwargs)
            except Urllib3Error as exc:
                raise TransientError(f"HubSpot {what} at {self.host}: {connection_problem(exc)}") from None
            except Exception as exc:
                if not hasattr(exc, "status"):
                    raise
                raise self._translate(what, exc, search) from None
            self._observe(headers, search)
            return data, status

        def attempt():
            token = self._use(self.oauth.token()) if self.oauth else ""
            try:
                return once(token)
            except AuthError:
                if self.oauth is None:
                    raise
                # An OAuth token HubSpot no longer takes (expired early, revoked): refresh once.
                log.info("HubSpot refused the OAuth access token during %s; refreshing it", what)
                return once(self._use(self.oauth.rejected(token)))
        return self.policy.call(f"HubSpot {what}", attempt)

    def _use(self, token: str) -> str:
        """Hand ``token`` to every kept API object (each holds its own configuration)."""
        if token != self._token_in_use:
            with self._lock:
                for api in self.api.values():
                    api.api_client.configuration.access_token = token
                self._token_in_use = token
        return token

    def _translate(self, what: str, exc: Any, search: bool) -> Exception:
        status = int(getattr(exc, "status", 0) or 0)
        body = _json(getattr(exc, "body", None))
        headers = getattr(exc, "headers", None) or {}
        message = body.get("message") or getattr(exc, "reason", "") or ""
        if status == 0:
            return TransientError(f"HubSpot {what}: {message or 'connection failed'}")
        if status == 401:
            return AuthError(f"HubSpot rejected the token ({message or 'invalid authentication'}); check "
                             "[hubspot] access_token_env / the app's scopes")
        if status == 403:
            return ConfigError(f"HubSpot refused {what}: {message} (missing scopes?)")
        if status == 429:
            policy = body.get("policyName", "")
            if policy == "DAILY":
                return BudgetExhausted("HubSpot daily API limit reached; closedloop pauses until it resets")
            retry_after = _float(headers.get("Retry-After") if hasattr(headers, "get") else None)
            # The search limit's 429 names no policy ("You have reached your secondly limit.");
            # the ten-second one says TEN_SECONDLY_ROLLING, whose message also holds "secondly".
            if search or policy == "SECONDLY" or (not policy and "secondly limit" in message.lower()):
                self.search_limiter.penalise()
                return RateLimited(f"HubSpot search limit hit during {what}", retry_after or 1.0)
            self.limiter.penalise()
            return RateLimited(f"HubSpot {policy or 'rate'} limit hit during {what}",
                               retry_after or self.limiter.window)
        if status in TRANSIENT_STATUSES:
            retry_after = _float(headers.get("Retry-After") if hasattr(headers, "get") else None)
            if retry_after:
                return RateLimited(f"HubSpot {what}: HTTP {status}", retry_after)
            return TransientError(f"HubSpot {what}: HTTP {status}")
        error = HubSpotRequestError(f"HubSpot {what}: HTTP {status} {body.get('category', '')}: {message}")
        error.status, error.body = status, body
        return error

    def _observe(self, headers: Any, search: bool) -> None:
        """Learn the limits from the response headers (all optional)."""
        get = headers.get if hasattr(headers, "get") else (lambda key, default=None: default)
        daily, remaining_daily = _int(get("X-HubSpot-RateLimit-Daily")), _int(get("X-HubSpot-RateLimit-Daily-Remaining"))
        if daily is not None and remaining_daily is not None:
            self.allowance.total, self.allowance.used = daily, daily - remaining_daily
        if not search:
            limit, remaining = _int(get("X-HubSpot-RateLimit-Max")), _int(get("X-HubSpot-RateLimit-Remaining"))
            interval = _int(get("X-HubSpot-RateLimit-Interval-Milliseconds"))
            if interval:
                self.limiter.window = interval / 1000
            if limit is not None or remaining is not None:
                self.limiter.observe(limit, remaining)

    def check_budget(self) -> None:
        """Stop before closedloop has used its share of the daily allowance."""
        if self.allowance.exhausted:
            raise BudgetExhausted(f"HubSpot: {self.allowance.describe()} until the daily count resets")

    # -- metadata ---------------------------------------------------------------------

    def describe_fields(self, object_name: str) -> dict[str, FieldSpec]:
        if object_name not in self._describe_cache:
            data, _ = self._call(f"list {object_name} properties", "properties", "get_all", object_name)
            specs = {}
            for prop in data.results:
                metadata = prop.modification_metadata
                read_only = bool(prop.calculated) or bool(metadata and metadata.read_only_value)
                specs[prop.name] = FieldSpec(
                    name=prop.name, label=prop.label or prop.name, kind=KIND_BY_TYPE.get(prop.type, "other"),
                    crm_type=f"{prop.type}/{prop.field_type}", length=65_536 if prop.type == "string" else None,
                    updateable=not read_only and not prop.name.startswith("hs_analytics_"),
                    custom=not bool(prop.hubspot_defined),
                    picklist_values=tuple(option.value for option in prop.options or []),
                    picklist_labels=tuple(option.label or option.value for option in prop.options or []),
                    restricted_picklist=prop.type == "enumeration")
            self._describe_cache[object_name] = specs
        return self._describe_cache[object_name]

    def ensure_fields(self, fields: list[NewField]) -> list[str]:
        """Create the "closedloop" group and the missing properties (batches of 100); existing
        ones are left alone, and one created meanwhile by someone else is not an error."""
        created = []
        for object_name in dict.fromkeys(new.object for new in fields):
            self._ensure_group(object_name)
            existing = self.describe_fields(object_name)
            wanted = [f for f in fields if f.object == object_name and f.name not in existing]
            for start in range(0, len(wanted), BATCH_LIMIT):
                chunk = wanted[start:start + BATCH_LIMIT]
                inputs = [{"name": new.name, "label": new.label, "type": PROPERTY_TYPE[new.kind][0],
                           "fieldType": PROPERTY_TYPE[new.kind][1], "groupName": GROUP,
                           "description": new.description} for new in chunk]
                data, status = self._call(f"create {len(chunk)} {object_name} properties", "properties.batch",
                                          "create", object_name, {"inputs": inputs})
                failed = {name for error in getattr(data, "errors", None) or []
                          for name in (error.context or {}).get("name", [])
                          if error.category not in ("OBJECT_ALREADY_EXISTS", "CONFLICT")}
                if failed:
                    raise RemoteError(f"HubSpot refused to create {object_name} properties: {', '.join(sorted(failed))}")
                created += [f"{object_name}.{new.name}" for new in chunk]
            self._describe_cache.pop(object_name, None)
            self._deleted.pop(object_name, None)
        return created

    def _ensure_group(self, object_name: str) -> None:
        data, _ = self._call(f"list {object_name} property groups", "groups", "get_all", object_name)
        if any(group.name == GROUP for group in data.results):
            return
        try:
            self._call(f"create {object_name} property group", "groups", "create", object_name,
                       {"name": GROUP, "label": "closedloop attribution", "displayOrder": -1})
        except HubSpotRequestError as exc:
            if exc.status != 409:
                raise

    # -- reads ------------------------------------------------------------------------

    def iter_changed(self, object_name: str, fields: list[str], since: datetime, until: datetime,
                     extra_filters: list[dict[str, Any]] | None = None) -> Iterator[list[LeadRecord]]:
        """Records modified in [since, until], oldest first, a page at a time (keyset windows).

        Each query starts at the newest timestamp read so far; records already read at that
        very millisecond are excluded by id, as many as the 3,000-character body cap leaves room
        for next to the properties asked for; a millisecond holding more is drained by id."""
        modified = MODIFIED[object_name]
        properties = list(dict.fromkeys(["createdate", modified, *fields]))
        start, end = _ms(since), _ms(until)
        extra = list(extra_filters or [])
        seen: list[str] = []  # ids already read whose timestamp is `start`
        plain = [[{"propertyName": modified, "operator": "GTE", "value": str(start)},
                  {"propertyName": modified, "operator": "LTE", "value": str(end)}, *extra]]
        if len(_search_body(properties, plain, modified)) > BODY_LIMIT:
            raise ConfigError(f"HubSpot search bodies may not exceed {BODY_LIMIT:,} characters, and the {object_name} "
                              f"mapping asks for {len(properties)} properties: map fewer fields (or shorter names)")
        while start <= end:
            if seen:
                groups = [[{"propertyName": modified, "operator": "EQ", "value": str(start)},
                           {"propertyName": "hs_object_id", "operator": "NOT_IN", "values": seen}, *extra],
                          [{"propertyName": modified, "operator": "GT", "value": str(start)},
                           {"propertyName": modified, "operator": "LTE", "value": str(end)}, *extra]]
                if len(seen) > EXCLUDE_LIMIT or len(_search_body(properties, groups, modified)) > BODY_LIMIT:
                    yield from self._drain_millisecond(object_name, properties, modified, start, extra, set(seen))
                    start, seen = start + 1, []
                    continue
            else:
                groups = [[{"propertyName": modified, "operator": "GTE", "value": str(start)},
                           {"propertyName": modified, "operator": "LTE", "value": str(end)}, *extra]]
            page, total = self._search(object_name, properties, groups, sort=modified)
            records = [self._record(object_name, item, modified) for item in page]
            if not records:
                return
            yield records
            if len(records) < SEARCH_PAGE or len(records) >= total:  # `total`: no empty page to learn it
                return
            newest = max(_ms(record.modified_at) for record in records)
            at_newest = [record.id for record in records if _ms(record.modified_at) == newest]
            seen = seen + at_newest if newest == start else at_newest
            start = newest

    def count_changed(self, object_name: str, since: datetime, until: datetime) -> int:
        """How many records ``iter_changed`` would yield (search's ``total``), for progress bars."""
        modified = MODIFIED[object_name]
        body = {"filterGroups": [{"filters": [{"propertyName": modified, "operator": "GTE", "value": str(_ms(since))},
                                              {"propertyName": modified, "operator": "LTE", "value": str(_ms(until))}]}],
                "properties": ["hs_object_id"], "limit": 1, "after": "0"}
        data, status = self._call(f"count {object_name}", f"{object_name}.search", "do_search", body, search=True,
                                  raw=True)
        if status != 200 or "total" not in data:
            raise RemoteError(f"HubSpot search {object_name} answered HTTP {status} without a total")
        return int(data["total"])

    def _drain_millisecond(self, object_name, properties, modified, moment, extra_filters, already: set[str]):
        """Every record of one crowded millisecond, by id (skipping ``already`` yielded ones)."""
        after_id = "0"
        while True:
            page, total = self._search(object_name, properties, [[
                {"propertyName": modified, "operator": "EQ", "value": str(moment)},
                {"propertyName": "hs_object_id", "operator": "GT", "value": after_id}, *(extra_filters or [])]],
                sort="hs_object_id")
            if not page:
                return
            records = [self._record(object_name, item, modified) for item in page]
            fresh = [record for record in records if record.id not in already]
            if fresh:
                yield fresh
            if len(page) < SEARCH_PAGE or len(page) >= total:
                return
            after_id = str(max(int(item["id"]) for item in page))

    def _search(self, object_name: str, properties: list[str], groups: list[list[dict[str, Any]]],
                sort: str) -> tuple[list, int]:
        """One search page and the ``total`` matching the filters (HubSpot counts them for free)."""
        body = json.loads(_search_body(properties, groups, sort))
        data, status = self._call(f"search {object_name}", f"{object_name}.search", "do_search", body, search=True,
                                  raw=True)
        if status != 200 or "results" not in data:
            raise RemoteError(f"HubSpot search {object_name} answered HTTP {status} without results")
        results = list(data["results"])
        return results, int(data.get("total", len(results) + 1))

    @staticmethod
    def _record(object_name: str, item: dict[str, Any], modified: str) -> LeadRecord:
        properties = dict(item.get("properties") or {})
        return LeadRecord(object=object_name, id=str(item["id"]),
                          created_at=_parse(properties.get("createdate") or item.get("createdAt")),
                          modified_at=_parse(properties.get(modified) or item.get("updatedAt")),
                          fields=properties)

    def records_by_id(self, object_name: str, ids: list[str], fields: list[str]) -> dict[str, dict[str, Any]]:
        return {str(item["id"]): dict(item.get("properties") or {})
                for item in self._batch_read(object_name, ids, fields)}

    def read_records(self, object_name: str, ids: list[str], fields: list[str]) -> list[LeadRecord]:
        """These records as they are now (the ones that still exist), for triggered work. A
        batch read by id, so HubSpot's search index lag does not apply."""
        modified = MODIFIED[object_name]
        properties = list(dict.fromkeys(["createdate", modified, *fields]))
        return [self._record(object_name, item, modified) for item in self._batch_read(object_name, ids, properties)]

    def _batch_read(self, object_name: str, ids: list[str], properties: list[str]) -> Iterator[dict[str, Any]]:
        for start in range(0, len(ids), BATCH_LIMIT):
            body = {"inputs": [{"id": i} for i in ids[start:start + BATCH_LIMIT]], "properties": properties}
            data, _ = self._call(f"read {object_name}", f"{object_name}.batch", "read", body, raw=True)
            yield from data.get("results") or []

    # -- writes -----------------------------------------------------------------------

    def update_records(self, updates: list[LeadUpdate]) -> list[WriteResult]:
        """Batch updates of ≤ 100, up to ``write_concurrency`` in flight at once (a batch call
        spends most of its time waiting on HubSpot; the rate limiter paces them together). One
        bad value is isolated by splitting its batch, so the others still land."""
        batches: list[tuple[str, list[LeadUpdate]]] = []
        for object_name in dict.fromkeys(update.object for update in updates):
            same = [update for update in updates if update.object == object_name]
            batches += [(object_name, same[start:start + BATCH_LIMIT]) for start in range(0, len(same), BATCH_LIMIT)]
        results: list[WriteResult] = []
        if self.write_concurrency == 1 or len(batches) == 1:
            for object_name, batch in batches:
                results.extend(self._update_batch(object_name, batch))
        else:
            with ThreadPoolExecutor(max_workers=min(self.write_concurrency, len(batches)),
                                    thread_name_prefix="hubspot-write") as pool:
                for done in pool.map(lambda item: self._update_batch(*item), batches):
                    results.extend(done)
        order = {id(update): n for n, update in enumerate(updates)}
        return sorted(results, key=lambda result: order[id(result.update)])

    def _update_batch(self, object_name: str, batch: list[LeadUpdate], *, schema_reread: bool = False
                      ) -> list[WriteResult]:
        self.check_budget()
        gone = self._deleted.get(object_name, frozenset())
        inputs = [{"id": update.id, "properties": {k: ("" if v is None else str(v))
                                                   for k, v in update.values.items() if k not in gone}}
                  for update in batch]
        sent = [update for update, item in zip(batch, inputs) if item["properties"]]
        results = {id(update): WriteResult(update, True, dropped=tuple(sorted(gone & set(update.values))))
                   for update in batch}
        if not sent:
            return list(results.values())
        body = {"inputs": [item for item in inputs if item["properties"]]}
        try:
            data, status = self._call(f"update {len(sent)} {object_name}", f"{object_name}.batch", "update", body,
                                      raw=True)
        except HubSpotRequestError as exc:
            if exc.status not in (400, 404):
                raise
            if not schema_reread and self._forget_deleted_properties(object_name, exc.body):
                # A mapped property was deleted in HubSpot: one schema re-read, one resend without it
                # (three calls for the batch, where splitting it would cost about two hundred).
                return self._update_batch(object_name, batch, schema_reread=True)
            unsent = [results[id(update)] for update in batch if all(update is not other for other in sent)]
            return unsent + self._isolate(object_name, sent, exc.body)
        failed: dict[str, tuple[str, str]] = {}
        for error in data.get("errors") or []:  # 207: some ids failed, the rest landed
            for record_id in (error.get("context") or {}).get("ids", []):
                failed[str(record_id)] = (error.get("category") or "ERROR", error.get("message") or "")
        if status not in (200, 207):
            raise RemoteError(f"HubSpot batch update answered HTTP {status}")
        for update in sent:
            if update.id in failed:
                results[id(update)] = WriteResult(update, False, *failed[update.id])
        return list(results.values())

    def _isolate(self, object_name: str, batch: list[LeadUpdate], body: dict) -> list[WriteResult]:
        """One bad value failed the whole batch. The error names the property (and usually the
        value): set those records aside and resend the rest; if it cannot tell, split."""
        if len(batch) == 1:
            return [WriteResult(batch[0], False, *_validation_detail(body))]
        offenders = _offenders(batch, body)
        if offenders and len(offenders) < len(batch):
            code, message = _validation_detail(body)
            rest = [update for update in batch if update not in offenders]
            return ([WriteResult(update, False, code, message) for update in offenders]
                    + self._update_batch(object_name, rest))
        middle = len(batch) // 2
        return self._update_batch(object_name, batch[:middle]) + self._update_batch(object_name, batch[middle:])

    def _forget_deleted_properties(self, object_name: str, body: dict) -> bool:
        """When HubSpot says a property does not exist, re-read the schema once and remember the
        written properties it no longer has (left out of every later batch until the schema is
        read again); returns whether there are any."""
        named = {name for error in body.get("errors") or [] if error.get("code") == "PROPERTY_DOESNT_EXIST"
                 for name in (error.get("context") or {}).get("propertyName") or []}
        if not named:
            return False
        self._describe_cache.pop(object_name, None)
        existing = self.describe_fields(object_name)
        gone = {name for name in named if name not in existing}
        if gone:
            self._deleted[object_name] = self._deleted.get(object_name, frozenset()) | gone
            log.warning("HubSpot %s properties %s no longer exist: they are left out of the writes; remove them "
                        "from the mapping or run `closedloop fields create` (`closedloop check` lists them)",
                        object_name, ", ".join(sorted(gone)))
        return bool(gone)

    def forget_metadata(self) -> None:
        """Read the schema again on next use (and try every mapped property again)."""
        self._describe_cache.clear()
        self._deleted.clear()

    # -- deals --------------------------------------------------------------------------

    def won_stages(self) -> set[str]:
        """Stage ids that count as won: configured, else closed stages with probability 1.0."""
        if self._won_stages is None:
            data, _ = self._call("list deal pipelines", "pipelines", "get_all", "deals")
            stages = set()
            for pipeline in data.results:
                for stage in pipeline.stages:
                    self._stage_labels[stage.id] = stage.label
                    metadata = stage.metadata or {}
                    if metadata.get("isClosed") == "true" and _float(metadata.get("probability")) == 1.0:
                        stages.add(stage.id)
            self._won_stages = set(self.configured_won_stages) or stages
            self._closed_stages = {stage.id for pipeline in data.results for stage in pipeline.stages
                                   if (stage.metadata or {}).get("isClosed") == "true"}
            self._stage_order = [DealStage(stage.id, stage.label, position, pipeline.label)
                                 for position, (pipeline, stage) in enumerate(
                                     (pipeline, stage)
                                     for pipeline in sorted(data.results, key=lambda p: (p.display_order, p.id))
                                     if not pipeline.archived
                                     for stage in sorted(pipeline.stages, key=lambda s: (s.display_order, s.id))
                                     if not stage.archived)]
        return self._won_stages

    def deal_stages(self) -> list[DealStage]:
        """Deal stages in HubSpot's own order (pipelines, then stages, by ``displayOrder``;
        hubspot-api.md §6.2) with their labels: ``closedwon`` is "Closed Won". Read with the
        won stages, once per adapter."""
        self.won_stages()
        return list(self._stage_order)

    def company_currency(self) -> str:
        return self.configured_currency or "USD"

    def iter_deals(self, since: datetime, until: datetime) -> Iterator[list[Deal]]:
        """Deals changed in [since, until] with their contacts (associations v4)."""
        for page in self.iter_changed("deals", DEAL_FIELDS, since, until):
            yield self._deals(page)

    def deals_by_id(self, ids: list[str]) -> list[Deal]:
        """These deals as they are now (for triggered revenue and lifecycle work)."""
        return self._deals(self.read_records("deals", ids, DEAL_FIELDS)) if ids else []

    def _deals(self, records: list[LeadRecord]) -> list[Deal]:
        won = self.won_stages()
        people = self.people_of_deals([record.id for record in records])
        return [Deal(id=r.id, name=r.fields.get("dealname") or "", stage=r.fields.get("dealstage") or "",
                     is_won=(r.fields.get("dealstage") or "") in won, amount=_decimal(r.fields.get("amount")),
                     currency=r.fields.get("deal_currency_code") or self.company_currency(),
                     closed_at=_parse(r.fields.get("closedate")), modified_at=r.modified_at,
                     created_at=r.created_at, people=people.get(r.id, []),
                     is_closed=(r.fields.get("dealstage") or "") in self._closed_stages)
                for r in records]

    def people_of_deals(self, deal_ids: list[str]) -> dict[str, list[PersonRef]]:
        people: dict[str, list[PersonRef]] = {}
        pending = [{"id": deal_id} for deal_id in deal_ids]
        while pending:
            batch, pending = pending[:ASSOCIATION_BATCH], pending[ASSOCIATION_BATCH:]
            data, _ = self._call("read deal contacts", "associations", "get_page", "deals", "contacts",
                                 {"inputs": batch}, raw=True)
            for result in data.get("results") or []:
                deal_id = str(result["from"]["id"])
                refs = people.setdefault(deal_id, [])
                for target in result.get("to") or []:
                    contact = str(target["toObjectId"])
                    if all(ref.id != contact for ref in refs):
                        refs.append(PersonRef("contacts", contact, primary=not refs))
                after = ((result.get("paging") or {}).get("next") or {}).get("after")
                if after:
                    pending.append({"id": deal_id, "after": after})
        return people

    def iter_contact_stages(self, since: datetime, until: datetime) -> Iterator[list[StageChange]]:
        """Lifecycle stage and lead status of contacts changed in [since, until]."""
        for page in self.iter_changed("contacts", ["lifecyclestage", "hs_lead_status"], since, until):
            changes = []
            for record in page:
                for field in ("lifecyclestage", "hs_lead_status"):
                    if record.fields.get(field):
                        changes.append(StageChange("contacts", record.id, field, record.fields[field],
                                                   record.modified_at, PersonRef("contacts", record.id)))
            yield changes


class HubSpotRequestError(RemoteError):
    """A 4xx HubSpot answered (other than auth and rate limits); ``status`` and ``body`` kept."""

    status: int = 0
    body: dict


def _offenders(batch: list[LeadUpdate], body: dict) -> list[LeadUpdate]:
    """The updates a whole-batch VALIDATION_ERROR is about: those carrying the named property
    (with the quoted value, when the message quotes one)."""
    problems: list[tuple[str, str | None]] = []
    for error in body.get("errors") or []:
        names = ((error.get("context") or {}).get("propertyName") or [])
        quoted = re.match(r'^"(.*?)"', error.get("message", ""))
        problems += [(name, quoted.group(1) if quoted else None) for name in names]
    if not problems:
        return []
    return [update for update in batch
            if any(name in update.values and (value is None or str(update.values[name]) == value)
                   for name, value in problems)]


def _validation_detail(body: dict) -> tuple[str, str]:
    for error in body.get("errors") or []:
        if error.get("code"):
            return error["code"], error.get("message", "")
    message = body.get("message", "")
    if "[" in message:
        try:
            details = json.loads(message[message.index("["):])
            return details[0].get("error", "VALIDATION_ERROR"), details[0].get("message", message)
        except (ValueError, IndexError, AttributeError):
            pass
    return body.get("category", "VALIDATION_ERROR"), message


def _json(text: Any) -> dict:
    try:
        value = json.loads(text) if isinstance(text, (str, bytes)) and text else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _float(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _parse(value: Any) -> datetime | None:
    if not value:
        return None
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc)
    text = str(value)
    if text.isdigit():
        return datetime.fromtimestamp(int(text) / 1000, timezone.utc)
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(timezone.utc)


def _decimal(value: Any) -> Decimal | None:
    if value in (None, ""):
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


def _search_body(properties: list[str], groups: list[list[dict[str, Any]]], sort: str) -> str:
    """The search request body as the client sends it (its ``rest.py`` uses plain ``json.dumps``),
    to measure against the cap."""
    return json.dumps({"filterGroups": [{"filters": filters} for filters in groups],
                       "sorts": [{"propertyName": sort, "direction": "ASCENDING"}],
                       "properties": properties, "limit": SEARCH_PAGE, "after": "0"})
