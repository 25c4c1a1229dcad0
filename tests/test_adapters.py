"""One contract suite for both CRM adapters, against the sandbox emulators over HTTP."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

import pytest

from adapters.base import LeadUpdate, NewField
from adapters.errors import AuthError, BudgetExhausted
from adapters.hubspot import HubSpotAdapter, HubSpotCredentials
from adapters.retry import RetryPolicy
from adapters.salesforce import SalesforceAdapter
from adapters.salesforce_auth import SalesforceCredentials
from sandbox.clock import Clock

EPOCH = datetime(2020, 1, 1, tzinfo=timezone.utc)


@dataclass
class Case:
    crm: str
    sandbox: Any
    adapter: Any
    object: str
    field: str
    batch: int
    sleeps: list
    seed: Callable[[int], list[str]]
    get: Callable[[str], dict]

    def far_future(self) -> datetime:
        return datetime.now(timezone.utc) + timedelta(days=1)


def salesforce_case(tmp_path) -> Case:
    from sandbox.salesforce import SalesforceSandbox

    sandbox = SalesforceSandbox(data_dir=tmp_path / "sf", clock=Clock(), require_fls=False)
    sandbox.start()
    credentials = sandbox.credentials
    sleeps: list[float] = []
    adapter = SalesforceAdapter(SalesforceCredentials(login_url=sandbox.url, auth="client_credentials",
                                                      client_id=credentials["client_id"],
                                                      client_secret=credentials["client_secret"]),
                                ca_bundle=str(sandbox.ca_path), timeout=2, policy=RetryPolicy(sleep=sleeps.append),
                                query_batch=200)
    adapter.ensure_fields([NewField("Lead", "CL_Source__c", "Source", "string")])
    return Case("salesforce", sandbox, adapter, "Lead", "CL_Source__c", 200, sleeps,
                lambda n: sandbox.seed("Lead", [{"LastName": f"L{i}", "Company": "X"} for i in range(n)]),
                lambda record_id: sandbox.record(record_id))


def hubspot_case(tmp_path) -> Case:
    from sandbox.hubspot import HubSpotSandbox

    sandbox = HubSpotSandbox(clock=Clock(), tier_max_per_10s=1000, search_per_second=1000)
    sandbox.start()
    sleeps: list[float] = []
    adapter = HubSpotAdapter(HubSpotCredentials(access_token=sandbox.private_token), host=sandbox.url, timeout=2,
                             policy=RetryPolicy(sleep=sleeps.append), sleep=sleeps.append)
    adapter.ensure_fields([NewField("contacts", "cl_source", "Source", "string")])
    return Case("hubspot", sandbox, adapter, "contacts", "cl_source", 100, sleeps,
                lambda n: sandbox.seed("contacts", [{"email": f"c{i}@x.example"} for i in range(n)]),
                lambda record_id: sandbox.record("contacts", record_id))


@pytest.fixture(params=["salesforce", "hubspot"])
def case(request, tmp_path):
    built = {"salesforce": salesforce_case, "hubspot": hubspot_case}[request.param](tmp_path)
    built.sandbox.reset_log()
    yield built
    built.sandbox.stop()


def all_ids(case: Case, since=EPOCH, until=None) -> list[str]:
    pages = list(case.adapter.iter_changed(case.object, [case.field], since, until or case.far_future()))
    return [record.id for page in pages for record in page]


def test_ensure_fields_is_idempotent(case):
    assert case.adapter.ensure_fields([NewField(case.object, case.field, "Source", "string")]) == []
    assert case.field in case.adapter.describe_fields(case.object)


def test_records_sharing_one_timestamp_are_all_read(case):
    """A bulk import stamps hundreds of records with one instant: none may be skipped, and none
    read twice (a second copy would be written again)."""
    case.sandbox.clock.freeze()
    ids = case.seed(450)
    case.sandbox.clock.unfreeze()
    seen = all_ids(case)
    assert sorted(seen) == sorted(ids)


def test_reading_is_ordered_and_windowed(case):
    case.sandbox.clock.freeze(datetime(2026, 1, 1, tzinfo=timezone.utc))
    early = case.seed(5)
    case.sandbox.clock.advance(3600)
    late = case.seed(5)
    case.sandbox.clock.unfreeze()
    window = all_ids(case, since=datetime(2026, 1, 1, 0, 30, tzinfo=timezone.utc),
                     until=datetime(2026, 1, 1, 2, tzinfo=timezone.utc))
    assert set(window) == set(late) and not set(window) & set(early)


def test_batched_writes_with_per_record_failures(case):
    ids = case.seed(250)
    updates = [LeadUpdate(case.object, record_id, {case.field: f"src-{n}"}) for n, record_id in enumerate(ids)]
    bad = LeadUpdate(case.object, ids[7], {"Status" if case.crm == "salesforce" else "lifecyclestage": "Bogus"})
    results = case.adapter.update_records(updates + [bad])
    assert [r.ok for r in results] == [True] * 250 + [False]
    assert results[-1].code in ("INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST", "INVALID_OPTION")
    assert case.get(ids[249])[case.field] == "src-249"
    calls = case.sandbox.api_calls("composite/sobjects" if case.crm == "salesforce" else "batch/update")
    expected = {"salesforce": 2, "hubspot": 4}[case.crm]  # HubSpot: the rejected batch is resent without the bad one
    assert calls == expected


def test_server_errors_and_hangs_are_retried(case):
    ids = case.seed(1)
    update = [LeadUpdate(case.object, ids[0], {case.field: "after-faults"})]
    kind = "server_error" if case.crm == "salesforce" else "503"
    case.sandbox.inject(kind)
    case.sandbox.inject("hang" if case.crm == "hubspot" else "slow", delay=3.0)
    case.sandbox.inject("lost_response")
    [result] = case.adapter.update_records(update)
    assert result.ok and case.get(ids[0])[case.field] == "after-faults"
    assert len(case.sleeps) >= 3


def test_budget_stops_writes(case):
    ids = case.seed(1)
    if case.crm == "salesforce":
        case.sandbox.set_api_usage(9000, 10000)
    else:
        case.sandbox.set_limits(daily_limit=10000, daily_used=9000)
    case.adapter.records_by_id(case.object, ids, [case.field])  # a read that reports the usage
    with pytest.raises(BudgetExhausted):
        case.adapter.update_records([LeadUpdate(case.object, ids[0], {case.field: "x"})])


def test_salesforce_session_expiry_is_survived_and_a_dead_login_fails_fast(tmp_path):
    case = salesforce_case(tmp_path)
    try:
        ids = case.seed(1)
        case.sandbox.expire_sessions()
        [result] = case.adapter.update_records([LeadUpdate("Lead", ids[0], {"CL_Source__c": "renewed"})])
        assert result.ok
        case.sandbox.expire_sessions(keep_rejecting=True)
        logins = case.sandbox.auth.logins
        with pytest.raises(AuthError, match="rejected a brand-new session"):
            case.adapter.query("SELECT Id FROM Lead")
        assert case.sandbox.auth.logins - logins == 1
        log = [entry for entry in case.sandbox.request_log() if entry["method"] == "PATCH"]
        assert all(entry["auto_assign"] == "FALSE" for entry in log)
    finally:
        case.sandbox.stop()


def test_hubspot_429s_with_and_without_retry_after_and_pacing(tmp_path):
    from sandbox.hubspot import HubSpotSandbox

    clock = Clock(frozen_at=datetime(2026, 3, 1, tzinfo=timezone.utc))
    sandbox = HubSpotSandbox(clock=clock, tier_max_per_10s=20)
    sandbox.start()
    try:
        # The adapter waits on the sandbox's clock: pacing is tested without sleeping.
        adapter = HubSpotAdapter(HubSpotCredentials(access_token=sandbox.private_token), host=sandbox.url,
                                 timeout=2, policy=RetryPolicy(sleep=clock.advance), sleep=clock.advance,
                                 monotonic=lambda: clock.now().timestamp())
        sandbox.inject("429_retry_after")
        sandbox.inject("429")
        assert adapter.describe_fields("contacts")
        for _ in range(30):  # more than the tier allows in ten seconds: the adapter waits, HubSpot never says 429
            adapter._call("list properties", "properties", "get_all", "contacts")
        statuses = [entry["status"] for entry in sandbox.request_log()]
        assert statuses[:2] == [429, 429] and 429 not in statuses[2:]
        assert adapter.limiter.waited > 0
        # "ten_secondly_rolling" holds "secondly", but it is the ten-second limit, not search's
        assert not adapter.search_limiter._calls
    finally:
        sandbox.stop()


def test_hubspot_more_than_10000_changes_in_one_window(tmp_path):
    """Keyset windows: every record of a 10,500-change window is read and no request ever
    pages with after >= 10,000 (the search API's hard cap)."""
    from sandbox.hubspot import HubSpotSandbox

    sandbox = HubSpotSandbox(clock=Clock(frozen_at=datetime(2026, 3, 1, tzinfo=timezone.utc)),
                             tier_max_per_10s=10_000, search_per_second=10_000)
    sandbox.start()
    try:
        ids = []
        for _ in range(105):
            ids += sandbox.seed("contacts", [{"email": f"bulk{len(ids) + i}@x.example"} for i in range(100)])
            sandbox.clock.advance(0.01)
        clock = sandbox.clock
        adapter = HubSpotAdapter(HubSpotCredentials(access_token=sandbox.private_token), host=sandbox.url,
                                 policy=RetryPolicy(sleep=clock.advance), sleep=clock.advance,
                                 monotonic=lambda: clock.now().timestamp())
        seen = [r.id for page in adapter.iter_changed("contacts", ["email"], EPOCH,
                                                      datetime(2026, 3, 2, tzinfo=timezone.utc)) for r in page]
        assert sorted(seen) == sorted(ids)  # each exactly once: ids already read are excluded, not re-read
        afters = [int(entry["body"]["after"]) for entry in sandbox.request_log() if entry["path"].endswith("/search")]
        assert max(afters) < 10_000
    finally:
        sandbox.stop()
