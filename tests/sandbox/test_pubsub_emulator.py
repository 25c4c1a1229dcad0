"""The Salesforce emulator's Pub/Sub API, driven as a subscriber drives it: a real grpcio client
with stubs generated from the published ``pubsub_api.proto``, Avro payloads decoded with
fastavro and the schema ``GetSchema`` returns, writes made with simple-salesforce over HTTPS.

Facts pinned here come from shared/reference/realtime-and-auth.md §2.2–2.3 ("ref") and the
Salesforce pages cited there. Time-dependent behaviour (retention, session expiry) moves the
emulator's clock; keepalives and idle timeouts are shortened instead of waited for.
"""
from __future__ import annotations

import importlib
import io
import json
import queue
import sys
import threading
import time
from datetime import datetime, timezone

import fastavro
import grpc
import pytest
import requests
from simple_salesforce import Salesforce

from sandbox.clock import Clock
from sandbox.salesforce import SalesforceSandbox
from sandbox.salesforce.pubsub import proto as vendored

FROZEN = datetime(2026, 11, 20, 12, 0, tzinfo=timezone.utc)
LEAD_TOPIC = "/data/LeadChangeEvent"
END = object()


# -- a client, as a subscriber would write one ---------------------------------------------

@pytest.fixture(scope="session")
def pb(tmp_path_factory):
    """``pubsub_api_pb2`` and ``pubsub_api_pb2_grpc`` generated with grpcio-tools, as Salesforce's
    Python sample does (ref §2.4)."""
    from grpc_tools import protoc

    out = tmp_path_factory.mktemp("pubsub_stubs")
    source = vendored.PROTO_PATH
    assert protoc.main(["protoc", f"-I{source.parent}", f"--python_out={out}", f"--grpc_python_out={out}",
                        str(source)]) == 0
    sys.path.insert(0, str(out))
    try:
        messages = importlib.import_module("pubsub_api_pb2")
        services = importlib.import_module("pubsub_api_pb2_grpc")
    finally:
        sys.path.remove(str(out))
    return messages, services


@pytest.fixture
def sb(tmp_path):
    sandbox = SalesforceSandbox(data_dir=tmp_path / "sf", clock=Clock(frozen_at=FROZEN), cdc_entities=["Lead"],
                                pubsub_keepalive_seconds=0.3, pubsub_idle_timeout_seconds=None)
    sandbox.start()
    yield sandbox
    sandbox.stop()


def login(sandbox: SalesforceSandbox) -> dict:
    c = sandbox.credentials
    response = requests.post(sandbox.url + "/services/oauth2/token", data={"grant_type": "client_credentials"},
                             auth=(c["client_id"], c["client_secret"]), verify=str(sandbox.ca_path), timeout=10)
    assert response.status_code == 200
    return response.json()


def auth_metadata(token: dict) -> tuple:
    """ref §2.3: accesstoken, instanceurl, tenantid (the org id from the identity URL)."""
    return (("accesstoken", token["access_token"]), ("instanceurl", token["instance_url"]),
            ("tenantid", token["id"].split("/")[-2]))


class Client:
    """A Pub/Sub client: one TLS channel trusting the sandbox's CA, schemas cached by id."""

    def __init__(self, pb, sandbox: SalesforceSandbox, metadata: tuple | None = None) -> None:
        self.messages, services = pb
        self.channel = grpc.secure_channel(sandbox.pubsub_endpoint,
                                           grpc.ssl_channel_credentials(sandbox.ca_path.read_bytes()))
        self.stub = services.PubSubStub(self.channel)
        self.metadata = metadata if metadata is not None else auth_metadata(login(sandbox))
        self.schemas: dict[str, tuple[dict, object]] = {}

    def subscribe(self, topic: str = LEAD_TOPIC, *, num_requested: int, preset: str = "LATEST",
                  replay_id: bytes = b"") -> "Subscription":
        first = self.messages.FetchRequest(topic_name=topic, replay_preset=self.messages.ReplayPreset.Value(preset),
                                           replay_id=replay_id, num_requested=num_requested)
        return Subscription(self, first)

    def schema(self, schema_id: str) -> tuple[dict, object]:
        if schema_id not in self.schemas:
            info = self.stub.GetSchema(self.messages.SchemaRequest(schema_id=schema_id), metadata=self.metadata,
                                       timeout=5)
            raw = json.loads(info.schema_json)
            self.schemas[schema_id] = (raw, fastavro.parse_schema(raw))
        return self.schemas[schema_id]

    def decode(self, consumer_event) -> dict:
        raw, parsed = self.schema(consumer_event.event.schema_id)
        event = fastavro.schemaless_reader(io.BytesIO(consumer_event.event.payload), parsed)
        header = event["ChangeEventHeader"]
        for name in ("changedFields", "nulledFields", "diffFields"):
            header[name] = field_names(raw, header[name])
        return event

    def close(self) -> None:
        self.channel.close()


class Subscription:
    """One Subscribe call; FetchRequests go out through a queue, responses come back through one."""

    def __init__(self, client: Client, first) -> None:
        self.client = client
        self.outbox: queue.Queue = queue.Queue()
        self.inbox: queue.Queue = queue.Queue()
        self.outbox.put(first)
        self.call = client.stub.Subscribe(iter(self.outbox.get, None), metadata=client.metadata)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        try:
            for response in self.call:
                self.inbox.put(response)
            self.inbox.put(END)
        except grpc.RpcError as error:
            self.inbox.put(error)

    def fetch(self, num_requested: int, topic: str = "") -> None:
        self.outbox.put(self.client.messages.FetchRequest(topic_name=topic, num_requested=num_requested))

    def next(self, timeout: float = 5.0):
        return self.inbox.get(timeout=timeout)

    def response(self, timeout: float = 5.0):
        item = self.next(timeout)
        assert not isinstance(item, grpc.RpcError) and item is not END, item
        return item

    def events(self, count: int, timeout: float = 5.0) -> list:
        """The next ``count`` events (keepalives in between are skipped)."""
        found: list = []
        deadline = time.monotonic() + timeout
        while len(found) < count:
            found += self.response(max(0.01, deadline - time.monotonic())).events
        assert len(found) == count, f"received {len(found)} events, expected {count}"
        return found

    def keepalive(self, timeout: float = 5.0):
        """The next response, which must be an empty one (nothing was pending)."""
        response = self.response(timeout)
        assert len(response.events) == 0
        return response

    def error(self, timeout: float = 5.0) -> grpc.RpcError:
        deadline = time.monotonic() + timeout
        while True:
            item = self.next(max(0.01, deadline - time.monotonic()))
            if isinstance(item, grpc.RpcError):
                return item
            assert item is not END, "the stream ended without an error"

    def close(self) -> None:
        self.outbox.put(None)
        self.call.cancel()


def field_names(schema: dict, bitmaps: list[str]) -> list[str]:
    """Decode Pub/Sub bitmaps to field names, as Salesforce's ChangeEventHeaderUtility.py does:
    bit i of the hex number is Avro field i; ``"p-0x.."`` indexes the components of field p."""
    fields = schema["fields"]
    names: list[str] = []
    for item in bitmaps:
        parent, _, bits = item.rpartition("-")
        value = int(bits, 16)
        if parent:
            nested = next(t for t in fields[int(parent)]["type"] if isinstance(t, dict))["fields"]
            names += [f"{fields[int(parent)]['name']}.{f['name']}" for i, f in enumerate(nested) if value >> i & 1]
        else:
            names += [f["name"] for i, f in enumerate(fields) if value >> i & 1]
    return names


def trailer(error: grpc.RpcError, key: str = "error-code") -> str | None:
    return dict(error.trailing_metadata() or ()).get(key)


def salesforce(sandbox: SalesforceSandbox, client_id: str | None = None) -> Salesforce:
    """simple-salesforce in direct mode; ``client_id`` goes out as ``Sforce-Call-Options`` on the
    session, where it survives re-login replays (salesforce-api.md §1.3)."""
    token = login(sandbox)
    session = requests.Session()
    session.trust_env, session.verify = False, str(sandbox.ca_path)
    if client_id:
        session.headers["Sforce-Call-Options"] = f"client={client_id}"
    return Salesforce(instance_url=token["instance_url"], session_id=token["access_token"], session=session)


@pytest.fixture
def client(pb, sb):
    c = Client(pb, sb)
    yield c
    c.close()


def new_lead(sandbox: SalesforceSandbox, n: int = 0) -> str:
    return sandbox.create("Lead", {"LastName": f"Lead {n}", "Company": "Acme", "Email": f"lead{n}@example.com"})


# -- descriptors ----------------------------------------------------------------------------

def test_the_committed_descriptor_is_the_compiled_vendored_proto(tmp_path):
    """sandbox/salesforce/pubsub/NOTICE.md: pubsub_api.binpb is regenerated from the .proto."""
    from grpc_tools import protoc

    from google.protobuf import descriptor_pb2

    out = tmp_path / "fresh.binpb"
    assert protoc.main(["protoc", f"-I{vendored.PROTO_PATH.parent}", f"--descriptor_set_out={out}",
                        str(vendored.PROTO_PATH)]) == 0
    fresh, committed = (descriptor_pb2.FileDescriptorSet.FromString(path.read_bytes())
                        for path in (out, vendored.DESCRIPTOR_PATH))
    assert fresh == committed  # compared as messages: protoc versions may order bytes differently


# -- events, schemas, changeOrigin -------------------------------------------------------------

def test_a_rest_write_arrives_as_an_avro_change_event_with_its_change_origin(sb, client):
    """ref §2.3: Avro payload decoded with GetSchema's schema; changeOrigin is
    com/salesforce/api/rest/<version>;client=<id> when the write sent Sforce-Call-Options."""
    subscription = client.subscribe(num_requested=10)
    subscription.keepalive()  # subscribed: from here on LATEST includes every new event
    sf = salesforce(sb, client_id="closedloop")
    created = sf.Lead.create({"LastName": "Lovelace", "FirstName": "Ada", "Company": "Engines",
                              "Email": "ada@example.com", "Phone": "+44 20 1234"})["id"]
    sf.Lead.update(created, {"Email": "ada@engines.example", "Phone": None})
    create, update = (client.decode(e) for e in subscription.events(2))

    header = create["ChangeEventHeader"]
    assert header["entityName"] == "Lead" and header["recordIds"] == [created]
    assert header["changeType"] == "CREATE" and header["sequenceNumber"] == 1
    assert header["changeOrigin"] == f"com/salesforce/api/rest/{sf.sf_version};client=closedloop"
    assert header["commitUser"] == sb.org.integration_user
    assert header["commitTimestamp"] == int(FROZEN.timestamp() * 1000)
    assert header["changedFields"] == [] and header["nulledFields"] == []
    assert create["Name"] == {"FirstName": "Ada", "LastName": "Lovelace"}  # compound field, nested
    assert create["Email"] == "ada@example.com" and create["Company"] == "Engines"
    assert create["CreatedDate"] == FROZEN and create["IsConverted"] is False
    assert "Id" not in create and "SystemModstamp" not in create and "IsDeleted" not in create

    header = update["ChangeEventHeader"]
    assert header["changeType"] == "UPDATE" and header["recordIds"] == [created]
    assert set(header["changedFields"]) == {"Email", "Phone", "LastModifiedDate"}
    assert header["nulledFields"] == ["Phone"]
    assert update["Email"] == "ada@engines.example" and update["Company"] is None  # unchanged fields are null
    assert header["commitNumber"] > create["ChangeEventHeader"]["commitNumber"]
    assert header["transactionKey"] != create["ChangeEventHeader"]["transactionKey"]
    subscription.close()


def test_change_origin_without_a_client_id_and_for_a_rep_in_the_ui(sb, client):
    """apex ChangeEventHeader: no client id set → no ;client= part; Lightning UI changes carry
    client=SfdcInternalAPI/ (cdc-subscribe-compound-fields example)."""
    subscription = client.subscribe(num_requested=10)
    subscription.keepalive()
    sf = salesforce(sb)
    api_lead = sf.Lead.create({"LastName": "Hopper", "Company": "Navy"})["id"]
    ui_lead = new_lead(sb)
    sb.update("Lead", ui_lead, {"LastName": "Renamed"})
    api, ui_create, ui_update = (client.decode(e)["ChangeEventHeader"] for e in subscription.events(3))
    assert api["recordIds"] == [api_lead] and api["changeOrigin"] == f"com/salesforce/api/rest/{sf.sf_version}"
    assert ui_create["changeOrigin"] == "com/salesforce/api/soap/68.0;client=SfdcInternalAPI/"
    assert ui_create["commitUser"] == sb.org.sales_rep
    assert ui_update["changedFields"] == ["LastModifiedDate", "Name.LastName"]
    subscription.close()


def test_identical_changes_in_one_request_share_an_event_and_rollbacks_publish_nothing(sb, client):
    """cdc_event_fields_header: the same change to several records in one transaction is one event
    listing all recordIds; an allOrNone collection that fails is rolled back entirely."""
    first, second = new_lead(sb, 1), new_lead(sb, 2)
    subscription = client.subscribe(num_requested=10)
    subscription.keepalive()
    sf = salesforce(sb)
    body = {"allOrNone": False, "records": [{"attributes": {"type": "Lead"}, "id": i, "Status": "Working - Contacted"}
                                            for i in (first, second)]}
    assert all(r["success"] for r in sf.restful("composite/sobjects", method="PATCH", json=body))
    body = {"allOrNone": True, "records": [{"attributes": {"type": "Lead"}, "id": first, "LeadSource": "Web"},
                                           {"attributes": {"type": "Lead"}, "id": second, "Status": "Nope"}]}
    assert not any(r["success"] for r in sf.restful("composite/sobjects", method="PATCH", json=body))
    sf.Lead.update(first, {"LeadSource": "Other"})
    merged, after = (client.decode(e)["ChangeEventHeader"] for e in subscription.events(2))
    assert merged["recordIds"] == [first, second]
    assert merged["changedFields"] == ["LastModifiedDate", "LastModifiedById", "Status"]  # the rep wrote them last
    assert after["recordIds"] == [first] and "LeadSource" in after["changedFields"]  # the rollback sent nothing
    subscription.close()


def test_delete_undelete_and_lead_conversion_events(sb, client):
    """cdc_event_fields_body: delete events carry no values, undelete ones all of them; lead
    conversion is a Lead update with IsConverted and the Converted*Id fields (salesforce-api.md §7)."""
    doomed, converted = new_lead(sb, 1), new_lead(sb, 2)
    subscription = client.subscribe(num_requested=10)
    subscription.keepalive()
    sb.delete("Lead", doomed)
    sb.undelete("Lead", doomed)
    ids = sb.convert_lead(converted)
    deleted, undeleted, conversion = (client.decode(e) for e in subscription.events(3))
    assert deleted["ChangeEventHeader"]["changeType"] == "DELETE" and deleted["Email"] is None
    assert undeleted["ChangeEventHeader"]["changeType"] == "UNDELETE" and undeleted["Email"] == "lead1@example.com"
    assert conversion["ChangeEventHeader"]["changeType"] == "UPDATE"
    assert {"IsConverted", "ConvertedContactId", "Status"} <= set(conversion["ChangeEventHeader"]["changedFields"])
    assert conversion["IsConverted"] is True and conversion["ConvertedContactId"] == ids["contactId"]
    subscription.close()


def test_only_selected_entities_publish_and_the_standard_channel_carries_them_all(sb, client):
    """ref §2.2: only entities selected for CDC publish; /data/ChangeEvents carries every selected one."""
    everything = client.subscribe("/data/ChangeEvents", num_requested=10)
    leads = client.subscribe(num_requested=10)
    everything.keepalive(), leads.keepalive()
    sb.create("Contact", {"LastName": "Unselected"})  # Contact is not selected: no event
    sb.enable_cdc("Contact")
    contact = sb.create("Contact", {"LastName": "Selected"})
    lead = new_lead(sb)
    headers = [client.decode(e)["ChangeEventHeader"] for e in everything.events(2)]
    assert [(h["entityName"], h["recordIds"]) for h in headers] == [("Contact", [contact]), ("Lead", [lead])]
    assert [client.decode(e)["ChangeEventHeader"]["recordIds"] for e in leads.events(1)] == [[lead]]
    assert len(leads.keepalive().events) == 0  # the contact never reaches the Lead topic
    sb.disable_cdc("Lead")
    new_lead(sb, 9)
    assert len(everything.keepalive().events) == 0
    everything.close(), leads.close()


def test_get_topic_and_a_schema_that_changes_when_a_field_is_added(sb, client):
    """ref §2.3: the schema id changes when fields are added; events name the schema they were
    written with and GetSchema still answers for the old one."""
    m = client.messages
    topic = client.stub.GetTopic(m.TopicRequest(topic_name=LEAD_TOPIC), metadata=client.metadata, timeout=5)
    assert topic.can_subscribe and not topic.can_publish and topic.tenant_guid == sb.org.organization_id
    subscription = client.subscribe(num_requested=10)
    subscription.keepalive()
    new_lead(sb, 1)
    sf = salesforce(sb)
    sf.toolingexecute("sobjects/CustomField", method="POST", data={
        "FullName": "Lead.CL_Channel__c", "Metadata": {"label": "Channel", "type": "Text", "length": 80}})
    sf.FieldPermissions.create({"ParentId": sb.org.permission_set, "SobjectType": "Lead",
                                "Field": "Lead.CL_Channel__c", "PermissionsRead": True, "PermissionsEdit": True})
    lead = new_lead(sb, 2)
    sf.Lead.update(lead, {"CL_Channel__c": "Paid Search"})
    before, created, updated = subscription.events(3)
    assert before.event.schema_id == topic.schema_id != created.event.schema_id == updated.event.schema_id
    assert "CL_Channel__c" not in client.decode(before)
    assert client.decode(updated)["CL_Channel__c"] == "Paid Search"
    assert "CL_Channel__c" in client.decode(updated)["ChangeEventHeader"]["changedFields"]
    assert client.stub.GetTopic(m.TopicRequest(topic_name=LEAD_TOPIC), metadata=client.metadata,
                                timeout=5).schema_id == created.event.schema_id
    with pytest.raises(grpc.RpcError) as unknown:
        client.stub.GetTopic(m.TopicRequest(topic_name="/data/NoSuchChangeEvent"), metadata=client.metadata, timeout=5)
    assert unknown.value.code() == grpc.StatusCode.NOT_FOUND and "rpcId: " in unknown.value.details()
    subscription.close()


# -- flow control, replay, keepalive -------------------------------------------------------------

def test_flow_control_never_delivers_more_than_requested(sb, client):
    """ref §2.3 / flow-control.html: each num_requested adds credit; at most 100 outstanding."""
    for n in range(8):
        new_lead(sb, n)
    subscription = client.subscribe(num_requested=3, preset="EARLIEST")
    first = subscription.events(3)
    quiet = subscription.keepalive()  # five events wait, but no credit is left
    assert quiet.pending_num_requested == 0
    assert quiet.latest_replay_id == first[-1].replay_id  # the position stops before what is pending
    subscription.fetch(2)
    second = subscription.events(2)
    assert subscription.keepalive().pending_num_requested == 0
    subscription.fetch(150)  # the server counts at most 100 outstanding
    third = subscription.events(3)
    assert subscription.keepalive().pending_num_requested == 97
    records = [client.decode(e)["ChangeEventHeader"]["recordIds"][0] for e in first + second + third]
    assert len(set(records)) == 8 and [e.replay_id for e in first + second + third] == sorted(
        e.replay_id for e in first + second + third)
    subscription.close()


def test_resuming_from_a_stored_replay_id_loses_and_repeats_nothing(sb, client):
    """ref §2.3: resubscribe with CUSTOM and the last processed replay id; replay ids are opaque."""
    leads = [new_lead(sb, n) for n in range(5)]
    subscription = client.subscribe(num_requested=3, preset="EARLIEST")
    processed = subscription.events(3)
    subscription.close()
    stored = processed[-1].replay_id
    leads += [new_lead(sb, n) for n in range(5, 7)]  # written while the subscriber was away
    resumed = client.subscribe(num_requested=100, preset="CUSTOM", replay_id=stored)
    rest = resumed.events(4)
    assert resumed.keepalive().pending_num_requested == 96  # and nothing after them
    seen = [client.decode(e)["ChangeEventHeader"]["recordIds"][0] for e in processed + rest]
    assert seen == leads
    resumed.close()


def test_keepalive_carries_a_replay_id_to_resume_from_after_a_quiet_period(sb, client):
    """pubsub_api.proto FetchResponse: an empty response with latest_replay_id when idle."""
    new_lead(sb, 1)
    subscription = client.subscribe(num_requested=5)
    started = time.monotonic()
    idle = subscription.keepalive()
    assert time.monotonic() - started >= 0.25 and idle.latest_replay_id and idle.pending_num_requested == 5
    subscription.close()
    later = new_lead(sb, 2)
    resumed = client.subscribe(num_requested=5, preset="CUSTOM", replay_id=idle.latest_replay_id)
    assert client.decode(resumed.events(1)[0])["ChangeEventHeader"]["recordIds"] == [later]
    resumed.close()


def test_an_expired_or_corrupt_replay_id_fails_the_stream_with_salesforces_code(sb, client):
    """ref §2.3: events are kept 72 h; an expired or invalid replay id fails with INVALID_ARGUMENT
    and error-code sfdc.platform.eventbus.grpc.subscription.fetch.replayid.corrupted."""
    new_lead(sb, 1)
    subscription = client.subscribe(num_requested=1, preset="EARLIEST")
    stored = subscription.events(1)[0].replay_id
    subscription.close()
    for bad in (stored[:-1] + bytes([stored[-1] ^ 1]), b"garbage", b""):
        error = client.subscribe(num_requested=1, preset="CUSTOM", replay_id=bad).error()
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert trailer(error) == "sfdc.platform.eventbus.grpc.subscription.fetch.replayid.corrupted"
        assert trailer(error, "rpc-id") and "The Replay ID validation failed." in error.details()
    sb.clock.advance(71 * 3600)
    client.metadata = auth_metadata(login(sb))  # the old session timed out meanwhile
    still = client.subscribe(num_requested=1, preset="CUSTOM", replay_id=stored)
    assert still.keepalive().pending_num_requested == 1  # within 72 h the id is fine
    still.close()
    fresh = new_lead(sb, 2)
    sb.clock.advance(2 * 3600)  # the first event is now 73 hours old, the second 2 hours
    client.metadata = auth_metadata(login(sb))
    error = client.subscribe(num_requested=1, preset="CUSTOM", replay_id=stored).error()
    assert trailer(error) == "sfdc.platform.eventbus.grpc.subscription.fetch.replayid.corrupted"
    earliest = client.subscribe(num_requested=5, preset="EARLIEST")  # the purged event is gone
    assert [client.decode(e)["ChangeEventHeader"]["recordIds"] for e in earliest.events(1)] == [[fresh]]
    earliest.close()


def test_a_stream_with_no_credit_ends_when_no_fetch_request_comes(pb, sb):
    """subscribe-rpc.html: with pending_num_requested at zero the client must send a FetchRequest
    within 60 seconds or the stream closes (shortened here)."""
    sb.set_pubsub(idle_timeout_seconds=0.3, keepalive_seconds=10)
    client = Client(pb, sb)
    new_lead(sb, 1)
    subscription = client.subscribe(num_requested=1, preset="EARLIEST")
    assert len(subscription.events(1)) == 1
    assert subscription.next(timeout=5) is END
    client.close()


def test_delivery_lag_holds_events_back_without_reordering_them(sb, client):
    """The configured lag between commit and delivery (real seconds) makes latency honest."""
    sb.set_pubsub(delivery_lag_seconds=0.4, keepalive_seconds=10)
    subscription = client.subscribe(num_requested=5)
    time.sleep(0.1)  # let the subscription reach the server before the writes
    written = time.monotonic()
    leads = [new_lead(sb, n) for n in range(3)]
    events = subscription.events(3)
    assert time.monotonic() - written >= 0.4
    assert [client.decode(e)["ChangeEventHeader"]["recordIds"][0] for e in events] == leads
    subscription.close()


# -- auth and errors ----------------------------------------------------------------------------

def test_rpcs_without_valid_auth_metadata_are_unauthenticated(pb, sb):
    """ref §2.3: accesstoken, instanceurl and tenantid on every RPC, checked against the org's
    sessions: UNAUTHENTICATED with error-code sfdc.platform.eventbus.grpc.service.auth.error."""
    good = dict(auth_metadata(login(sb)))
    variants = [{**good, "accesstoken": "00Dbogus!token"}, {**good, "tenantid": "00D000000000000AAA"},
                {k: v for k, v in good.items() if k != "instanceurl"}, {**good, "instanceurl": "https://other:1"}]
    for metadata in variants:
        client = Client(pb, sb, tuple(metadata.items()))
        with pytest.raises(grpc.RpcError) as refused:
            client.stub.GetTopic(client.messages.TopicRequest(topic_name=LEAD_TOPIC), metadata=client.metadata,
                                 timeout=5)
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert trailer(refused.value) == "sfdc.platform.eventbus.grpc.service.auth.error"
        error = client.subscribe(num_requested=1).error()
        assert error.code() == grpc.StatusCode.UNAUTHENTICATED
        client.close()
    client = Client(pb, sb, tuple(good.items()))
    sb.clock.advance(7200)  # the default session timeout: 2 hours of inactivity
    assert client.subscribe(num_requested=1).error().code() == grpc.StatusCode.UNAUTHENTICATED
    client.close()


def test_a_revoked_session_ends_an_open_stream_and_a_new_login_resubscribes(pb, sb):
    """An open stream keeps its session alive; a revoked one ends with the auth error, after
    which the client logs in again (ref §3.2: refresh reactively on Pub/Sub auth errors)."""
    client = Client(pb, sb)
    subscription = client.subscribe(num_requested=5)
    subscription.keepalive()
    sb.expire_sessions()
    error = subscription.error()
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    assert trailer(error) == "sfdc.platform.eventbus.grpc.service.auth.error"
    client.metadata = auth_metadata(login(sb))
    again = client.subscribe(num_requested=5)
    again.keepalive()
    lead = new_lead(sb)
    assert client.decode(again.events(1)[0])["ChangeEventHeader"]["recordIds"] == [lead]
    again.close()
    client.close()


def test_stream_loss_and_an_unavailable_service(sb, client):
    """handling-errors.html: any error closes the stream; the client resubscribes from its replay id."""
    subscription = client.subscribe(num_requested=5)
    subscription.keepalive()
    assert sb.break_pubsub_streams() == 1
    assert subscription.error().code() == grpc.StatusCode.UNAVAILABLE
    sb.set_pubsub_unavailable(True)
    error = client.subscribe(num_requested=5).error()
    assert error.code() == grpc.StatusCode.UNAVAILABLE
    assert trailer(error) == "sfdc.platform.eventbus.grpc.service.unavailable"
    sb.set_pubsub_unavailable(False)
    again = client.subscribe(num_requested=5)
    again.keepalive()
    again.close()


def test_a_later_fetch_request_may_not_change_the_topic(sb, client):
    """pubsub_api.proto: a later topic_name must match the first, else INVALID_ARGUMENT."""
    subscription = client.subscribe(num_requested=1)
    subscription.keepalive()
    subscription.fetch(1, topic="/data/ContactChangeEvent")
    assert subscription.error().code() == grpc.StatusCode.INVALID_ARGUMENT


def test_the_delivery_allocation_ends_streams_with_the_limit_error(sb, client):
    """ref §2.2: over the rolling 24 h delivery allocation a Pub/Sub client gets
    sfdc.platform.eventbus.grpc.subscription.limit.exceeded."""
    sb.set_pubsub(delivery_allocation=2)
    for n in range(3):
        new_lead(sb, n)
    subscription = client.subscribe(num_requested=10, preset="EARLIEST")
    assert len(subscription.events(2)) == 2
    error = subscription.error()
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert trailer(error) == "sfdc.platform.eventbus.grpc.subscription.limit.exceeded"
    sb.clock.advance(24 * 3600 + 1)  # the window rolls on
    client.metadata = auth_metadata(login(sb))
    again = client.subscribe(num_requested=10, preset="EARLIEST")
    assert len(again.events(2)) == 2  # the allocation again allows two
    again.close()


# -- the CDC selection as a client reads it -----------------------------------------------------

def test_tooling_platform_event_channel_members_show_and_change_the_selection(sb):
    """ref §2.2 and Tooling PlatformEventChannelMember: ChangeEvents_<Entity>ChangeEvent members."""
    sf = salesforce(sb)
    soql = "SELECT Id, DeveloperName, EventChannel, SelectedEntity FROM PlatformEventChannelMember"
    result = sf.toolingexecute("query/?q=" + requests.utils.quote(soql))
    assert result["totalSize"] == 1 and result["entityTypeName"] == "PlatformEventChannelMember"
    row = result["records"][0]
    assert (row["DeveloperName"], row["EventChannel"], row["SelectedEntity"]) == (
        "ChangeEvents_LeadChangeEvent", "ChangeEvents", "LeadChangeEvent")
    created = sf.toolingexecute("sobjects/PlatformEventChannelMember", method="POST", data={
        "FullName": "ChangeEvents_OpportunityChangeEvent",
        "Metadata": {"eventChannel": "ChangeEvents", "selectedEntity": "OpportunityChangeEvent"}})
    assert created["success"] and sb.cdc_entities == ["Lead", "Opportunity"]
    where = soql + " WHERE SelectedEntity = 'OpportunityChangeEvent'"
    assert sf.toolingexecute("query/?q=" + requests.utils.quote(where))["records"][0]["Id"] == created["id"]
    sf.toolingexecute(f"sobjects/PlatformEventChannelMember/{created['id']}", method="DELETE")
    assert sb.cdc_entities == ["Lead"]
    sb.enable_cdc("Contact", "Account", "OpportunityContactRole", "Opportunity")
    with pytest.raises(Exception) as over:  # five entities without the add-on licence
        sf.toolingexecute("sobjects/PlatformEventChannelMember", method="POST", data={
            "FullName": "ChangeEvents_UserChangeEvent",
            "Metadata": {"eventChannel": "ChangeEvents", "selectedEntity": "UserChangeEvent"}})
    assert "LIMIT_EXCEEDED" in str(over.value)


def test_cdc_and_pubsub_through_the_http_control_api(sb):
    """admin.py: another process can select entities and tune the Pub/Sub endpoint."""
    session = requests.Session()
    session.trust_env, session.verify = False, str(sb.ca_path)
    assert session.post(sb.url + "/_sandbox/cdc", json={"enable": ["Contact"], "disable": ["Lead"]},
                        timeout=5).status_code == 200
    assert session.get(sb.url + "/_sandbox/cdc", timeout=5).json() == {"entities": ["Contact"], "max_entities": 5}
    assert session.post(sb.url + "/_sandbox/pubsub", json={"keepalive_seconds": 2, "delivery_lag_seconds": 1.5},
                        timeout=5).status_code == 200
    settings = session.get(sb.url + "/_sandbox/pubsub", timeout=5).json()
    assert settings["endpoint"] == sb.pubsub_endpoint and settings["keepalive_seconds"] == 2
    assert settings["delivery_lag_seconds"] == 1.5
    sb.create("Contact", {"LastName": "Control"})
    assert [e["changeType"] for e in session.get(sb.url + "/_sandbox/change-events", timeout=5).json()] == ["CREATE"]


def test_the_suite_serves_pubsub_with_leads_contacts_and_opportunities_selected(pb, tmp_path):
    """sandbox/suite.py: the demo's and ``closedloop sandbox``'s org publishes the three entities."""
    from sandbox.suite import SandboxSuite
    from support import free_port

    port = free_port()
    suite = SandboxSuite.start(tmp_path, pubsub_port=port, salesforce={"pubsub_keepalive_seconds": 0.3})
    try:
        assert suite.pubsub_endpoint == f"localhost:{port}"
        assert suite.salesforce.cdc_entities == ["Lead", "Contact", "Opportunity"]
        client = Client(pb, suite.salesforce)
        subscription = client.subscribe("/data/ChangeEvents", num_requested=10)
        subscription.keepalive()
        lead = new_lead(suite.salesforce)
        ids = suite.salesforce.convert_lead(lead)
        headers = [client.decode(e)["ChangeEventHeader"] for e in subscription.events(4)]
        assert [(h["entityName"], h["changeType"], h["recordIds"]) for h in headers] == [
            ("Lead", "CREATE", [lead]), ("Contact", "CREATE", [ids["contactId"]]),
            ("Opportunity", "CREATE", [ids["opportunityId"]]), ("Lead", "UPDATE", [lead])]
        conversion = headers[1:]  # one transaction: one key, sequence numbers from 1
        assert len({h["transactionKey"] for h in conversion}) == 1
        assert [h["sequenceNumber"] for h in conversion] == [1, 2, 3]
        subscription.close()
        client.close()
    finally:
        suite.stop()
