"""The Pub/Sub subscriber's decoding: Avro payloads with their writer schema, changedFields bitmaps,
gRPC errors as closedloop's error tree, and the proto compiled from the vendored file.

The stream itself (credit, keepalives, resuming, re-authenticating) is tested against the
Salesforce emulator's gRPC endpoint in ``test_triggers.py``."""
from __future__ import annotations

import io
from datetime import datetime, timezone

import grpc
import pytest
from fastavro import parse_schema, schemaless_writer

from adapters.errors import AuthError, BudgetExhausted, ConfigError, TransientError
from adapters.salesforce_pubsub import ReplayIdLost, _messages, classify, decode_bitmap, decode_event

HEADER = {"type": "record", "name": "ChangeEventHeader", "namespace": "com.sforce.eventbus", "fields": [
    {"name": "entityName", "type": "string"},
    {"name": "recordIds", "type": {"type": "array", "items": "string"}},
    {"name": "changeType", "type": {"type": "enum", "name": "ChangeType", "symbols": [
        "CREATE", "UPDATE", "DELETE", "UNDELETE", "GAP_CREATE", "GAP_UPDATE", "GAP_DELETE", "GAP_UNDELETE",
        "GAP_OVERFLOW"]}},
    {"name": "changeOrigin", "type": "string"},
    {"name": "transactionKey", "type": "string"},
    {"name": "sequenceNumber", "type": "int"},
    {"name": "commitTimestamp", "type": "long"},
    {"name": "commitNumber", "type": "long"},
    {"name": "commitUser", "type": "string"},
    {"name": "nulledFields", "type": {"type": "array", "items": "string"}},
    {"name": "diffFields", "type": {"type": "array", "items": "string"}},
    {"name": "changedFields", "type": {"type": "array", "items": "string"}}]}
NAME = {"type": "record", "name": "Switchable_PersonName", "fields": [
    {"name": "Salutation", "type": ["null", "string"], "default": None},
    {"name": "FirstName", "type": ["null", "string"], "default": None},
    {"name": "LastName", "type": ["null", "string"], "default": None}]}
LEAD_EVENT = {"type": "record", "name": "LeadChangeEvent", "namespace": "com.sforce.eventbus", "fields": [
    {"name": "ChangeEventHeader", "type": HEADER},
    {"name": "Name", "type": ["null", NAME], "default": None},
    {"name": "Email", "type": ["null", "string"], "default": None},
    {"name": "Company", "type": ["null", "string"], "default": None},
    {"name": "Status", "type": ["null", "string"], "default": None},
    {"name": "CL_Visitor_Id__c", "type": ["null", "string"], "default": None}]}


def _payload(header: dict, **fields) -> tuple[bytes, dict]:
    schema = parse_schema(LEAD_EVENT)
    record = {"ChangeEventHeader": {
        "entityName": "Lead", "recordIds": [], "changeType": "UPDATE", "changeOrigin": "", "transactionKey": "t1",
        "sequenceNumber": 1, "commitTimestamp": 1_796_000_000_123, "commitNumber": 1, "commitUser": "005x",
        "nulledFields": [], "diffFields": [], "changedFields": [], **header}, "Name": None, "Email": None,
        "Company": None, "Status": None, "CL_Visitor_Id__c": None, **fields}
    out = io.BytesIO()
    schemaless_writer(out, schema, record)
    return out.getvalue(), schema


def test_a_create_event_decodes_to_its_header():
    payload, schema = _payload({"recordIds": ["00Q5g0000000001EAA"], "changeType": "CREATE",
                                "changeOrigin": "com/salesforce/api/rest/62.0"},
                               Name={"Salutation": None, "FirstName": "Pat", "LastName": "Lee"}, Email="pat@x.io")
    event = decode_event(payload, schema, b"\x00\x01")
    assert event.entity == "Lead" and event.record_ids == ("00Q5g0000000001EAA",)
    assert event.change_type == "CREATE" and event.replay_id == b"\x00\x01"
    assert event.commit_at == datetime(2026, 11, 30, 0, 53, 20, 123000, tzinfo=timezone.utc)


def test_changed_fields_bitmaps_name_top_level_and_nested_fields():
    schema = parse_schema(LEAD_EVENT)
    # bit 2 = Email, bit 5 = CL_Visitor_Id__c; "1-0x04" = the third field of Name (LastName)
    assert decode_bitmap(["0x24", "1-0x04"], schema) == ("Email", "CL_Visitor_Id__c", "Name.LastName")
    assert decode_bitmap([], schema) == ()
    assert decode_bitmap(["0xZZ", "9-0x01", "x-0x01"], schema) == ()  # unreadable parts are skipped


def test_an_update_event_carries_its_changed_fields_and_origin():
    payload, schema = _payload({"recordIds": ["00Qa", "00Qb"], "changedFields": ["0x10"],
                                "changeOrigin": "com/salesforce/api/rest/62.0;client=closedloop"}, Status="Working")
    event = decode_event(payload, schema, b"r")
    assert event.changed_fields == ("Status",) and event.record_ids == ("00Qa", "00Qb")
    assert event.change_origin.endswith("client=closedloop")


class _RpcError(grpc.RpcError):
    def __init__(self, code, details="", trailers=()):
        self._code, self._details, self._trailers = code, details, trailers

    def code(self):
        return self._code

    def details(self):
        return self._details

    def trailing_metadata(self):
        return self._trailers


@pytest.mark.parametrize("code, trailer, expected", [
    (grpc.StatusCode.INVALID_ARGUMENT, "sfdc.platform.eventbus.grpc.subscription.fetch.replayid.corrupted",
     ReplayIdLost),
    (grpc.StatusCode.INVALID_ARGUMENT, "sfdc.platform.eventbus.grpc.subscription.fetch.replayid.validation.failed",
     ReplayIdLost),
    (grpc.StatusCode.RESOURCE_EXHAUSTED, "sfdc.platform.eventbus.grpc.subscription.limit.exceeded",
     BudgetExhausted),
    (grpc.StatusCode.UNAUTHENTICATED, "sfdc.platform.eventbus.grpc.service.auth.error", AuthError),
    (grpc.StatusCode.PERMISSION_DENIED, "", ConfigError),
    (grpc.StatusCode.NOT_FOUND, "sfdc.platform.eventbus.grpc.topic.not.found", ConfigError),
    (grpc.StatusCode.UNAVAILABLE, "", TransientError),
    (grpc.StatusCode.INTERNAL, "sfdc.platform.eventbus.grpc.service.unavailable", TransientError),
])
def test_grpc_failures_map_onto_the_error_tree(code, trailer, expected):
    error = classify(_RpcError(code, "rpcId: abc", (("error-code", trailer),) if trailer else ()), "Subscribe",
                     "/data/LeadChangeEvent")
    assert type(error) is expected
    assert "/data/LeadChangeEvent" in error.user_message


def test_the_vendored_proto_compiles_into_its_own_pool():
    messages = _messages()
    request = messages["FetchRequest"](topic_name="/data/LeadChangeEvent", replay_preset=2, replay_id=b"\x07",
                                       num_requested=100)
    again = messages["FetchRequest"].FromString(request.SerializeToString())
    assert (again.topic_name, again.replay_preset, again.replay_id, again.num_requested) == \
        ("/data/LeadChangeEvent", 2, b"\x07", 100)
