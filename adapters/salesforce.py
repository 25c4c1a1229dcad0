"""Salesforce through simple-salesforce: declarative streams over one guarded call path.

Everything goes through :meth:`SalesforceAdapter._call`, which runs under the shared retry
policy and turns simple-salesforce's exceptions into closedloop's error tree:

- ``INVALID_SESSION_ID`` → authenticate again once and replay; if the fresh session is refused
  too, stop with an :class:`AuthError` (simple-salesforce alone would re-login forever);
- 403 ``REQUEST_LIMIT_EXCEEDED`` → :class:`BudgetExhausted` (it is not a permission error);
- 5xx, ``UNABLE_TO_LOCK_ROW``, connection resets and timeouts → :class:`TransientError`;
- anything else 4xx → :class:`RemoteError` or :class:`ConfigError`.

Writes use sObject Collections (``PATCH composite/sobjects``, 200 records a call,
``allOrNone: false``); per-record failures come back as :class:`WriteResult` values, zipped to
the request by position. ``Sforce-Auto-Assign: FALSE`` sits on the session headers, where the
replay after a re-login keeps it (per-call headers are dropped on replay, §1.3 of the
reference), and so does ``Sforce-Call-Options: client=closedloop``: Change Data Capture names
that client in the ``changeOrigin`` of the events closedloop's own writes cause, so the
subscriber can drop them instead of enriching its own writes again (realtime-and-auth.md §2.3). The daily API allowance is read from ``Sforce-Limit-Info`` after every call, and
writes stop before closedloop has used its configured share of it.
"""
from __future__ import annotations

import logging
import threading
from datetime import date, datetime, timezone
from decimal import Decimal
from typing import Any, Callable, Iterator, TypeVar

import requests
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import (SalesforceError, SalesforceExpiredSession, SalesforceGeneralError,
                                          SalesforceMalformedRequest, SalesforceRefusedRequest,
                                          SalesforceResourceNotFound)

from adapters.base import (Allowance, Deal, DealStage, FieldSpec, LeadRecord, LeadUpdate, NewField, PersonRef,
                           StageChange, WriteResult)
from adapters.errors import (AuthError, BudgetExhausted, ClosedloopError, ConfigError, RemoteError,
                             TransientError)
from adapters.http import CallCounter, connection_problem, make_session
from adapters.retry import RetryPolicy
from adapters.salesforce_auth import SalesforceCredentials, Token, fetch_token
from adapters.salesforce_pubsub import PubSubAuth

log = logging.getLogger(__name__)

T = TypeVar("T")
CALL_OPTIONS_CLIENT = "closedloop"  # Sforce-Call-Options client id; change events carry it in changeOrigin
COLLECTION_LIMIT = 200
QUERY_BATCH = 2000
ID_CHUNK = 300  # ids per IN (...) list: keeps the query URL far below 16,384 bytes
KIND_BY_TYPE = {
    "string": "string", "url": "string", "email": "string", "phone": "string", "combobox": "string",
    "encryptedstring": "string", "textarea": "textarea", "picklist": "picklist", "multipicklist": "picklist",
    "int": "number", "double": "number", "currency": "number", "percent": "number", "long": "number",
    "datetime": "datetime", "date": "date", "boolean": "boolean", "reference": "reference", "id": "id",
}
TOOLING_TYPE = {"string": ("Text", {"length": 255}), "number": ("Number", {"precision": 18, "scale": 2}),
                "datetime": ("DateTime", {})}
RETRYABLE_RECORD_CODES = {"UNABLE_TO_LOCK_ROW"}


class SalesforceAdapter:
    """One Salesforce org. Thread-safe enough for one job at a time per instance."""

    name = "salesforce"
    replication_key = "SystemModstamp"
    write_batch = COLLECTION_LIMIT

    def __init__(self, credentials: SalesforceCredentials, *, api_version: str = "62.0", instance_url: str = "",
                 ca_bundle: str | None = None, timeout: float = 30.0, max_daily_share: float = 0.5,
                 policy: RetryPolicy | None = None, counter: CallCounter | None = None,
                 query_batch: int = QUERY_BATCH, permission_set: str = "") -> None:
        self.credentials = credentials
        self.permission_set = permission_set
        self.api_version = api_version
        self.configured_instance_url = instance_url.rstrip("/")
        self.timeout = timeout
        self.policy = policy or RetryPolicy()
        self.counter = counter or CallCounter()
        self.allowance = Allowance(max_daily_share, unit="API requests")
        self.query_batch = query_batch
        self.http = make_session(timeout=timeout, ca_bundle=ca_bundle, counter=self.counter, system=self.name)
        # Session-level, so simple-salesforce's replay after a re-login keeps it.
        self.http.headers["Sforce-Auto-Assign"] = "FALSE"
        self.http.headers["Sforce-Call-Options"] = f"client={CALL_OPTIONS_CLIENT}"
        self._sf: Salesforce | None = None
        self._token: Token | None = None
        self._lock = threading.RLock()
        self._describe_cache: dict[str, dict[str, FieldSpec]] = {}
        self._multi_currency: bool | None = None
        self._org_currency: str | None = None

    # -- connection -------------------------------------------------------------------

    @property
    def sf(self) -> Salesforce:
        with self._lock:
            if self._sf is None:
                self._authenticate()
            return self._sf

    def _authenticate(self) -> None:
        token = self.policy.call("Salesforce login", lambda: fetch_token(self.http, self.credentials, self.timeout))
        instance = self.configured_instance_url or token.instance_url
        self._token = token
        self._sf = Salesforce(instance_url=instance, session_id=token.access_token, session=self.http,
                              version=self.api_version, parse_float=Decimal)

    def pubsub_auth(self, renew: bool = False) -> PubSubAuth:
        """The session for Pub/Sub RPCs (the same one the REST calls use); ``renew`` logs in again.

        The tenant id is the org id from the token's identity URL, else read from Organization."""
        with self._lock:
            if renew or self._sf is None:
                self._sf = None
                self._authenticate()
            token, instance = self._token, self.configured_instance_url or self._token.instance_url
        org_id = token.org_id or self.query("SELECT Id FROM Organization")[0]["Id"]
        return PubSubAuth(access_token=token.access_token, instance_url=instance, tenant_id=org_id)

    def _call(self, what: str, operation: Callable[[Salesforce], T]) -> T:
        """Run ``operation(sf)`` under the retry policy, translating errors (see module docstring)."""
        def attempt() -> T:
            reauthenticated = False
            while True:
                sf = self.sf
                try:
                    result = operation(sf)
                except SalesforceExpiredSession:
                    if reauthenticated:
                        raise AuthError(f"Salesforce rejected a brand-new session during {what}: check the "
                                        "app's session policies and the integration user") from None
                    log.info("Salesforce session expired during %s; authenticating again", what)
                    with self._lock:
                        self._sf = None
                    reauthenticated = True
                    continue
                except SalesforceError as exc:
                    raise self._translate(what, exc) from None
                except (requests.ConnectionError, requests.Timeout) as exc:
                    raise TransientError(f"Salesforce {what}: {connection_problem(exc)}") from None
                except requests.exceptions.ChunkedEncodingError:
                    raise TransientError(f"Salesforce {what}: the connection broke mid-response") from None
                except (KeyError, ValueError) as exc:
                    # simple-salesforce crashes on a 401 that is not a JSON list (reference §1.3).
                    raise TransientError(f"Salesforce {what}: unreadable response ({type(exc).__name__})") from None
                self._read_usage(sf)
                return result
        return self.policy.call(f"Salesforce {what}", attempt)

    def _translate(self, what: str, exc: SalesforceError) -> ClosedloopError:
        code, message = _first_error(exc.content)
        if isinstance(exc, SalesforceRefusedRequest):
            if code == "REQUEST_LIMIT_EXCEEDED":
                return BudgetExhausted(f"Salesforce API limit reached ({message}); closedloop pauses until the "
                                       "allowance frees up")
            return ConfigError(f"Salesforce refused {what} ({code or 403}): {message} — check the integration "
                               "user's permissions")
        if isinstance(exc, SalesforceMalformedRequest):
            if code == "UNABLE_TO_LOCK_ROW":
                return TransientError(f"Salesforce {what}: record locked ({message})")
            if code in ("INVALID_FIELD", "INVALID_TYPE"):
                return ConfigError(f"Salesforce {what}: {code}: {message.splitlines()[-1] if message else ''} — "
                                   "run `closedloop check` (is the field visible to the integration user?)")
            return RemoteError(f"Salesforce {what}: {code or 400}: {message}")
        if isinstance(exc, SalesforceResourceNotFound):
            return RemoteError(f"Salesforce {what}: not found ({message or exc.resource_name})")
        if isinstance(exc, SalesforceGeneralError) and exc.status >= 500:
            return TransientError(f"Salesforce {what}: HTTP {exc.status}")
        return RemoteError(f"Salesforce {what}: HTTP {exc.status} {code}: {message}")

    def _read_usage(self, sf: Salesforce) -> None:
        usage = sf.api_usage.get("api-usage") if sf.api_usage else None
        if usage is not None:
            self.allowance.used, self.allowance.total = usage.used, usage.total

    def check_budget(self) -> None:
        """Raise :class:`BudgetExhausted` when closedloop's share of the daily allowance is used."""
        if self.allowance.exhausted:
            raise BudgetExhausted(f"Salesforce: {self.allowance.describe()} until usage drops")

    # -- metadata ---------------------------------------------------------------------

    def describe_fields(self, object_name: str) -> dict[str, FieldSpec]:
        if object_name not in self._describe_cache:
            body = self._call(f"describe {object_name}", lambda sf: sf.restful(f"sobjects/{object_name}/describe",
                                                                              timeout=self.timeout))
            self._describe_cache[object_name] = {
                field["name"]: FieldSpec(
                    name=field["name"], label=field.get("label", field["name"]),
                    kind=KIND_BY_TYPE.get(field.get("type", ""), "other"), crm_type=field.get("type", ""),
                    length=field.get("length") or None, updateable=bool(field.get("updateable")),
                    custom=bool(field.get("custom")),
                    picklist_values=tuple(v["value"] for v in field.get("picklistValues") or [] if v.get("active")),
                    picklist_labels=tuple(v.get("label") or v["value"] for v in field.get("picklistValues") or []
                                          if v.get("active")),
                    restricted_picklist=bool(field.get("restrictedPicklist")))
                for field in body.get("fields", [])}
        return self._describe_cache[object_name]

    def forget_metadata(self) -> None:
        self._describe_cache.clear()

    def ensure_fields(self, fields: list[NewField]) -> list[str]:
        """Create the missing custom fields via the Tooling API and grant the integration user
        read/edit on them; returns the ``Object.Field`` names created. Existing fields are
        never changed."""
        created = []
        for new in fields:
            if new.name in self.describe_fields(new.object):
                continue
            tooling_type, extra = TOOLING_TYPE[new.kind]
            if new.kind == "string":
                extra = {"length": min(max(new.length, 1), 255)}
            metadata = {"label": new.label[:40], "type": tooling_type, "description": new.description[:1000],
                        "inlineHelpText": new.description[:510], **extra}
            full_name = f"{new.object}.{new.name}"
            result = self._call(f"create field {full_name}", lambda sf: sf.toolingexecute(
                "sobjects/CustomField", method="POST", data={"FullName": full_name, "Metadata": metadata},
                timeout=self.timeout))
            if isinstance(result, dict) and result.get("success") is False:
                raise RemoteError(f"Salesforce could not create {full_name}: {result.get('errors')}")
            created.append(full_name)
        if created and self.permission_set:
            self._grant_field_access(created, self.permission_set)
        if created:
            self.forget_metadata()
        return created

    def change_event_selection(self) -> set[str]:
        """The entities selected for Change Data Capture on the standard channel (Setup → Change
        Data Capture), e.g. ``{"LeadChangeEvent"}``: Tooling ``PlatformEventChannelMember``."""
        soql = "SELECT SelectedEntity FROM PlatformEventChannelMember WHERE EventChannel = 'ChangeEvents'"
        body = self._call("read the Change Data Capture selection", lambda sf: sf.toolingexecute(
            "query/", params={"q": soql}, timeout=self.timeout))
        return {str(row.get("SelectedEntity")) for row in (body or {}).get("records", []) if isinstance(row, dict)}

    def _grant_field_access(self, full_names: list[str], permission_set: str) -> None:
        rows = self.query(f"SELECT Id FROM PermissionSet WHERE Name = '{_soql_escape(permission_set)}'")
        if not rows:
            raise ConfigError(f"[salesforce] permission_set: no permission set named {permission_set!r}")
        parent = rows[0]["Id"]
        for start in range(0, len(full_names), COLLECTION_LIMIT):
            records = [{"attributes": {"type": "FieldPermissions"}, "ParentId": parent,
                        "SobjectType": name.split(".")[0], "Field": name, "PermissionsRead": True,
                        "PermissionsEdit": True} for name in full_names[start:start + COLLECTION_LIMIT]]
            results = self._call(f"grant access to {len(records)} fields", lambda sf: sf.restful(
                "composite/sobjects", method="POST", json={"allOrNone": False, "records": records},
                timeout=self.timeout))
            refused = [r.get("errors") for r in results or [] if not r.get("success")]
            if refused:
                raise RemoteError(f"Salesforce refused field access for {len(refused)} field(s): {refused[0]}")

    # -- reads ------------------------------------------------------------------------

    def query(self, soql: str) -> list[dict[str, Any]]:
        """A small query whose result fits in memory (metadata lookups, id chunks)."""
        return [record for page in self.query_pages(soql) for record in page]

    def query_pages(self, soql: str) -> Iterator[list[dict[str, Any]]]:
        """Pages of records for ``soql``, following ``nextRecordsUrl``; nothing is held beyond a page."""
        headers = {"Sforce-Query-Options": f"batchSize={self.query_batch}"}
        result = self._call("query", lambda sf: sf.query(soql, headers=headers, timeout=self.timeout))
        while True:
            yield [_strip_attributes(record) for record in result.get("records", [])]
            if result.get("done", True) or not result.get("nextRecordsUrl"):
                return
            locator = result["nextRecordsUrl"]
            result = self._call("query page", lambda sf: sf.query_more(locator, identifier_is_url=True,
                                                                        headers=headers, timeout=self.timeout))

    def iter_changed(self, object_name: str, fields: list[str], since: datetime, until: datetime,
                     where: str = "") -> Iterator[list[LeadRecord]]:
        """Records whose SystemModstamp is in [since, until], oldest first, a page at a time.

        Inclusive on both ends: records sharing the boundary second are re-read rather than
        skipped; the job de-duplicates."""
        wanted = ["Id", "CreatedDate", "SystemModstamp"] + [f for f in dict.fromkeys(fields)
                                                             if f not in ("Id", "CreatedDate", "SystemModstamp")]
        conditions = [f"SystemModstamp >= {_soql_datetime(since)}", f"SystemModstamp <= {_soql_datetime(until)}"]
        if where:
            conditions.append(f"({where})")
        soql = (f"SELECT {', '.join(wanted)} FROM {object_name} WHERE {' AND '.join(conditions)} "
                f"ORDER BY SystemModstamp, Id")
        for page in self.query_pages(soql):
            yield [_lead_record(object_name, row) for row in page]

    def read_records(self, object_name: str, ids: list[str], fields: list[str]) -> list[LeadRecord]:
        """These records as they are now (the ones that still exist), for triggered work."""
        wanted = ["CreatedDate", "SystemModstamp", *[f for f in fields if f not in ("CreatedDate", "SystemModstamp")]]
        return [_lead_record(object_name, row) for row in self.records_by_id(object_name, ids, wanted).values()]

    def count_changed(self, object_name: str, since: datetime, until: datetime, where: str = "") -> int:
        """How many records ``iter_changed`` would yield (one COUNT() query), for progress bars."""
        conditions = [f"SystemModstamp >= {_soql_datetime(since)}", f"SystemModstamp <= {_soql_datetime(until)}"]
        if where:
            conditions.append(f"({where})")
        soql = f"SELECT COUNT() FROM {object_name} WHERE {' AND '.join(conditions)}"
        return int(self._call(f"count {object_name}", lambda sf: sf.query(soql))["totalSize"])

    def records_by_id(self, object_name: str, ids: list[str], fields: list[str]) -> dict[str, dict[str, Any]]:
        """Current values of ``fields`` for ``ids`` (chunked so URLs stay short)."""
        wanted = ", ".join(dict.fromkeys(["Id", *fields]))
        found: dict[str, dict[str, Any]] = {}
        for start in range(0, len(ids), ID_CHUNK):
            chunk = ", ".join(f"'{_soql_escape(i)}'" for i in ids[start:start + ID_CHUNK])
            for row in self.query(f"SELECT {wanted} FROM {object_name} WHERE Id IN ({chunk})"):
                found[row["Id"]] = row
        return found

    @staticmethod
    def event_snapshot(values: dict[str, Any]) -> dict[str, Any]:
        """A change event's field values as the REST API would return them (JSON-safe), so a
        created record can be enriched from its create event without reading it again."""
        snapshot: dict[str, Any] = {}
        for name, value in values.items():
            if isinstance(value, datetime):
                value = value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "+0000"
            elif isinstance(value, date):
                value = value.isoformat()
            elif isinstance(value, Decimal):
                value = float(value)
            elif not isinstance(value, (str, int, float, bool)):
                continue
            snapshot[name] = value
        return snapshot

    @staticmethod
    def record_from_snapshot(object_name: str, record_id: str, snapshot: dict[str, Any]) -> LeadRecord | None:
        """The record a create event described (None when the event lacks its creation time)."""
        if not snapshot.get("CreatedDate"):
            return None
        row = {"Id": record_id, "SystemModstamp": snapshot.get("LastModifiedDate") or snapshot["CreatedDate"],
               **snapshot}
        return _lead_record(object_name, row)

    # -- writes -----------------------------------------------------------------------

    def update_records(self, updates: list[LeadUpdate]) -> list[WriteResult]:
        """Write ``updates`` in collections of 200; failures are reported per record, in order.

        Records that failed only because they were locked are retried once more at the end."""
        results: list[WriteResult] = []
        for start in range(0, len(updates), COLLECTION_LIMIT):
            results.extend(self._update_chunk(updates[start:start + COLLECTION_LIMIT]))
        locked = [result.update for result in results if not result.ok and result.code in RETRYABLE_RECORD_CODES]
        if locked:
            retried = {id(r.update): r for r in self._update_chunk(locked)} if len(locked) <= COLLECTION_LIMIT \
                else {id(r.update): r for r in self.update_records(locked)}
            results = [retried.get(id(result.update), result) for result in results]
        return results

    def _update_chunk(self, chunk: list[LeadUpdate]) -> list[WriteResult]:
        self.check_budget()
        body = {"allOrNone": False, "records": [
            {"attributes": {"type": update.object}, "id": update.id, **update.values} for update in chunk]}
        answer = self._call(f"update {len(chunk)} records", lambda sf: sf.restful(
            "composite/sobjects", method="PATCH", json=body, timeout=self.timeout))
        if not isinstance(answer, list) or len(answer) != len(chunk):
            raise RemoteError(f"Salesforce answered a {len(chunk)}-record update with "
                              f"{len(answer) if isinstance(answer, list) else 'no'} results")
        results = []
        for update, outcome in zip(chunk, answer):  # by position: failed results carry no id
            if outcome.get("success"):
                results.append(WriteResult(update, True))
            else:
                error = (outcome.get("errors") or [{}])[0]
                results.append(WriteResult(update, False, error.get("statusCode", "UNKNOWN"),
                                           error.get("message", "")))
        return results

    # -- deals and stages -------------------------------------------------------------

    def multi_currency(self) -> bool:
        if self._multi_currency is None:
            self._multi_currency = "CurrencyIsoCode" in self.describe_fields("Opportunity")
        return self._multi_currency

    def org_currency(self) -> str:
        if self._org_currency is None:
            rows = self.query("SELECT DefaultCurrencyIsoCode FROM Organization")
            self._org_currency = (rows[0].get("DefaultCurrencyIsoCode") if rows else None) or "USD"
        return self._org_currency

    def deal_stages(self) -> list[DealStage]:
        """Opportunity stages in the org's order with their labels: the active values of the
        StageName picklist, which describe lists in the order set under Opportunity Stages
        (salesforce-api.md, describe ``picklistValues``). No extra call: the describe is cached."""
        spec = self.describe_fields("Opportunity").get("StageName")
        if spec is None:
            return []
        return [DealStage(value, label, position)
                for position, (value, label) in enumerate(zip(spec.picklist_values, spec.picklist_labels))]

    def iter_deals(self, since: datetime, until: datetime) -> Iterator[list[Deal]]:
        """Opportunities changed in [since, until] that are won, or were closed (so a won deal
        reopened or lost is seen too), with the people they belong to."""
        for page in self.iter_changed("Opportunity", self._deal_fields(), since, until):
            yield self._deals(page)

    def deals_by_id(self, ids: list[str]) -> list[Deal]:
        """These opportunities as they are now (for triggered revenue and lifecycle work)."""
        return self._deals(self.read_records("Opportunity", ids, self._deal_fields())) if ids else []

    def _deal_fields(self) -> list[str]:
        fields = ["Name", "StageName", "IsWon", "IsClosed", "Amount", "CloseDate", "ContactId", "CreatedDate"]
        return fields + (["CurrencyIsoCode"] if self.multi_currency() else [])

    def _deals(self, records: list[LeadRecord]) -> list[Deal]:
        currency = None if self.multi_currency() else self.org_currency()
        people = self.people_of_deals([record.id for record in records])
        return [Deal(id=r.id, name=r.fields.get("Name") or "", stage=r.fields.get("StageName") or "",
                     is_won=bool(r.fields.get("IsWon")), amount=_decimal(r.fields.get("Amount")),
                     currency=r.fields.get("CurrencyIsoCode") or currency or self.org_currency(),
                     closed_at=_close_moment(r.fields.get("CloseDate")), modified_at=r.modified_at,
                     created_at=r.created_at, is_closed=bool(r.fields.get("IsClosed")),
                     people=people.get(r.id) or ([PersonRef("Contact", r.fields["ContactId"])]
                                                 if r.fields.get("ContactId") else []))
                for r in records]

    def people_of_deals(self, opportunity_ids: list[str]) -> dict[str, list[PersonRef]]:
        """Contacts per opportunity: contact roles (primary first), then the converting lead."""
        people: dict[str, list[PersonRef]] = {}
        for start in range(0, len(opportunity_ids), ID_CHUNK):
            chunk = ", ".join(f"'{i}'" for i in opportunity_ids[start:start + ID_CHUNK])
            roles = self.query("SELECT OpportunityId, ContactId, IsPrimary FROM OpportunityContactRole "
                               f"WHERE OpportunityId IN ({chunk})")
            for role in sorted(roles, key=lambda row: not row.get("IsPrimary")):
                if role.get("ContactId"):
                    people.setdefault(role["OpportunityId"], []).append(
                        PersonRef("Contact", role["ContactId"], bool(role.get("IsPrimary"))))
            missing = [i for i in opportunity_ids[start:start + ID_CHUNK] if i not in people]
            if missing:
                leads = self.query("SELECT Id, ConvertedOpportunityId, ConvertedContactId FROM Lead WHERE "
                                   f"ConvertedOpportunityId IN ({', '.join(repr(i) for i in missing)})")
                for lead in leads:
                    refs = people.setdefault(lead["ConvertedOpportunityId"], [])
                    if lead.get("ConvertedContactId"):
                        refs.append(PersonRef("Contact", lead["ConvertedContactId"], True))
                    refs.append(PersonRef("Lead", lead["Id"]))
        return people

    def iter_lead_stages(self, since: datetime, until: datetime) -> Iterator[list[StageChange]]:
        """Current lead status (and conversion) of leads changed in [since, until]."""
        for page in self.iter_changed("Lead", ["Status", "IsConverted", "ConvertedContactId", "ConvertedDate"],
                                      since, until):
            changes = []
            for record in page:
                person = PersonRef("Lead", record.id)
                if record.fields.get("IsConverted"):
                    changes.append(StageChange("Lead", record.id, "IsConverted", "converted",
                                               record.modified_at, person))
                if record.fields.get("Status"):
                    changes.append(StageChange("Lead", record.id, "Status", record.fields["Status"],
                                               record.modified_at, person))
            yield changes


def _first_error(content: Any) -> tuple[str, str]:
    if isinstance(content, list) and content and isinstance(content[0], dict):
        return str(content[0].get("errorCode", "")), str(content[0].get("message", ""))
    if isinstance(content, dict):
        return str(content.get("errorCode", "")), str(content.get("message", ""))
    return "", str(content)[:200] if content else ""


def _lead_record(object_name: str, row: dict[str, Any]) -> LeadRecord:
    return LeadRecord(object=object_name, id=row["Id"], created_at=parse_datetime(row["CreatedDate"]),
                      modified_at=parse_datetime(row["SystemModstamp"]), fields=row,
                      converted=bool(row.get("IsConverted")))


def _strip_attributes(record: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in record.items() if key != "attributes"}


def _soql_datetime(moment: datetime) -> str:
    """Salesforce datetime literal, UTC, second precision, unquoted (``str(datetime)`` breaks SOQL)."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _soql_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("'", "\\'")


def parse_datetime(value: str) -> datetime:
    """``2024-01-31T10:00:00.000+0000`` → aware UTC datetime."""
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%f%z").astimezone(timezone.utc)


def _close_moment(value: str | None) -> datetime | None:
    """CloseDate is a date; a deal "closes" at the end of that day, UTC."""
    if not value:
        return None
    day = date.fromisoformat(value)
    return datetime(day.year, day.month, day.day, 23, 59, 59, tzinfo=timezone.utc)


def _decimal(value: Any) -> Decimal | None:
    return None if value is None else Decimal(str(value))
