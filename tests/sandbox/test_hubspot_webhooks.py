"""The HubSpot emulator's app webhooks, received the way a daemon receives them: a real HTTP
server in the test gets the signed batches; writes go through hubspot-api-client 12.

Facts pinned here: shared/reference/realtime-and-auth.md §1.2 ("ref") and hubspot-api.md §9.2.
Retries move the emulator's clock rather than waiting for HubSpot's delays.
"""
from __future__ import annotations

import json
import queue
import threading
import time
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
from hubspot import HubSpot
from hubspot.utils.signature import Signature
from urllib3.util.retry import Retry

from sandbox.clock import Clock
from sandbox.hubspot import HubSpotSandbox
from sandbox.web import free_port

TIMEOUT = (2, 2)
SECRET = "test-app-client-secret"
APP_ID = 1234567


class Receiver:
    """A webhook endpoint: records each request and answers from a plan (status, or (seconds, status))."""

    def __init__(self, *plan) -> None:
        self.requests: queue.Queue = queue.Queue()
        self.plan = list(plan)
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                step = receiver.plan.pop(0) if receiver.plan else 204
                delay, status = step if isinstance(step, tuple) else (0, step)
                receiver.requests.put({"path": self.path, "headers": dict(self.headers), "body": body.decode(),
                                       "status": status})
                time.sleep(delay)
                try:
                    self.send_response(status)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/webhooks/hubspot?source=sandbox"

    def take(self, timeout: float = 5.0) -> dict:
        return self.requests.get(timeout=timeout)

    def events(self, count: int, timeout: float = 5.0) -> list[dict]:
        found: list[dict] = []
        while len(found) < count:
            found += json.loads(self.take(timeout)["body"])
        assert len(found) == count
        return found

    def nothing(self, seconds: float = 0.3) -> bool:
        try:
            self.requests.get(timeout=seconds)
        except queue.Empty:
            return True
        return False

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def sb(receiver):
    """A portal whose app sends contact and deal events to ``receiver``; the clock is frozen at the
    real now, so the client library's five-minute timestamp window accepts the signatures."""
    clock = Clock()
    clock.freeze()
    sandbox = HubSpotSandbox(clock=clock, webhooks={
        "target_url": receiver.url, "client_secret": SECRET, "app_id": APP_ID, "subscriptions": [
            {"subscriptionType": "contact.creation"},
            {"subscriptionType": "contact.propertyChange", "propertyName": "email"},
            {"subscriptionType": "contact.propertyChange", "propertyName": "lifecyclestage"},
            {"subscriptionType": "contact.deletion"},
            {"subscriptionType": "deal.creation"},
            {"subscriptionType": "deal.propertyChange", "propertyName": "dealstage"},
            {"subscriptionType": "deal.propertyChange", "propertyName": "amount"}]})
    sandbox.start()
    yield sandbox
    sandbox.stop()
    assert not sandbox.internal_errors, sandbox.internal_errors[0]


def client(sandbox: HubSpotSandbox) -> HubSpot:
    return HubSpot(access_token=sandbox.credentials["access_token"], host=sandbox.url, retry=Retry(total=0))


def settled(sandbox: HubSpotSandbox, attempts: int) -> None:
    """Wait until the emulator has recorded ``attempts`` delivery attempts (each retry is timed
    from the moment its attempt failed, so the clock may only move after that)."""
    deadline = time.monotonic() + 5
    while len(sandbox.webhook_deliveries()) < attempts:
        assert time.monotonic() < deadline, sandbox.webhook_deliveries()
        time.sleep(0.01)


def verified(request: dict, url: str) -> list[dict]:
    """The events of a request whose v3 signature verifies with hubspot-api-client's own helper."""
    headers = request["headers"]
    assert Signature.is_valid(signature=headers["X-HubSpot-Signature-v3"], client_secret=SECRET,
                              request_body=request["body"], http_uri=url, http_method="POST",
                              signature_version="v3", timestamp=headers["X-HubSpot-Request-Timestamp"])
    assert Signature.is_valid(signature=headers["X-HubSpot-Signature"], client_secret=SECRET,
                              request_body=request["body"], signature_version="v1")
    assert headers["X-HubSpot-Signature-Version"] == "v1" and headers["Content-Type"] == "application/json"
    return json.loads(request["body"])


def test_an_api_write_arrives_as_a_signed_batch_attributed_to_the_writing_app(sb, receiver):
    """ref §1.2: a JSON array of events with the documented fields, signed v3 (and v1) with the
    app's client secret over method + full URI + body + timestamp; an app's API write says
    changeSource INTEGRATION with the app id as sourceId (captured deliveries, unverified)."""
    created = client(sb).crm.contacts.basic_api.create(
        {"properties": {"email": "ada@example.com", "firstname": "Ada"}}, _request_timeout=TIMEOUT)
    request = receiver.take()
    assert request["path"] == "/webhooks/hubspot?source=sandbox"
    events = verified(request, receiver.url)
    assert Signature.is_valid(signature=request["headers"]["X-HubSpot-Signature-v3"], client_secret="wrong",
                              request_body=request["body"], http_uri=receiver.url, signature_version="v3",
                              timestamp=request["headers"]["X-HubSpot-Request-Timestamp"]) is False
    by_type = {(e["subscriptionType"], e.get("propertyName")): e for e in events}
    assert set(by_type) == {("contact.creation", None), ("contact.propertyChange", "email"),
                            ("contact.propertyChange", "lifecyclestage")}  # firstname is not subscribed
    creation = by_type["contact.creation", None]
    assert creation["objectId"] == int(created.id) and creation["changeFlag"] == "CREATED"
    assert creation["portalId"] == 99999 and creation["appId"] == APP_ID and creation["attemptNumber"] == 0
    assert creation["occurredAt"] == int(sb.clock.now().timestamp() * 1000)
    assert {e["changeSource"] for e in events} == {"INTEGRATION"} and {e["sourceId"] for e in events} == {"1234567"}
    assert by_type["contact.propertyChange", "email"]["propertyValue"] == "ada@example.com"
    assert len({e["eventId"] for e in events}) == 3 and len({e["subscriptionId"] for e in events}) == 3


def test_property_changes_per_subscribed_property_ui_writes_and_deletions(sb, receiver):
    """ref §1.2: propertyChange is one subscription per property; a change in the CRM UI says
    CRM_UI and userId:<id> (captured deliveries, unverified)."""
    contact = sb.create("contacts", {"email": "grace@example.com"})
    assert len(receiver.events(3)) == 3
    sb.update("contacts", contact, {"firstname": "Grace"})  # not subscribed
    assert receiver.nothing()
    sb.update("contacts", contact, {"email": "grace@navy.example"})
    [change] = receiver.events(1)
    assert (change["subscriptionType"], change["propertyName"], change["propertyValue"]) == (
        "contact.propertyChange", "email", "grace@navy.example")
    assert (change["changeSource"], change["sourceId"]) == ("CRM_UI", "userId:98765432")
    deal = sb.create("deals", {"dealname": "Big", "amount": "1000"})
    assert {(e["subscriptionType"], e.get("propertyName")) for e in receiver.events(3)} == {
        ("deal.creation", None), ("deal.propertyChange", "dealstage"), ("deal.propertyChange", "amount")}
    sb.move_deal(deal, "closedwon")
    [stage] = receiver.events(1)
    assert (stage["propertyName"], stage["propertyValue"], stage["objectId"]) == ("dealstage", "closedwon", int(deal))
    client(sb).crm.contacts.basic_api.archive(contact, _request_timeout=TIMEOUT)
    [deletion] = receiver.events(1)
    assert deletion["subscriptionType"] == "contact.deletion" and deletion["changeSource"] == "INTEGRATION"


def test_batches_hold_at_most_100_events(sb, receiver):
    """ref §1.2: "Each request can contain up to 100 events"."""
    sb.configure_webhooks(delivery_delay_seconds=1, max_concurrent_requests=1,
                          subscriptions=[{"subscriptionType": "contact.creation"}])
    batch = client(sb).crm.contacts.batch_api
    for start in (0, 100, 200):
        batch.create({"inputs": [{"properties": {"email": f"c{n}@example.com"}} for n in range(start, start + 80)]},
                     _request_timeout=TIMEOUT)
    assert receiver.nothing(0.2)  # not due yet: nothing is sent before the delivery delay
    sb.clock.advance(1)
    sizes = []
    events: list[dict] = []
    while len(events) < 240:
        received = verified(receiver.take(), receiver.url)
        sizes.append(len(received))
        events += received
    assert sizes == [100, 100, 40]
    assert len({e["objectId"] for e in events}) == 240


def test_failed_deliveries_are_retried_later_with_a_higher_attempt_number(receiver):
    """ref §1.2: retried on any 4xx/5xx, on a timeout and on a refused connection, with delays;
    ``attemptNumber`` counts from 0."""
    receiver.plan = [503, 404, (1.0, 200), 200]
    clock = Clock()
    clock.freeze()
    sandbox = HubSpotSandbox(clock=clock, webhooks={
        "target_url": receiver.url, "client_secret": SECRET, "timeout_seconds": 0.3, "jitter": 0,
        "subscriptions": [{"subscriptionType": "contact.creation"}]})
    sandbox.start()
    try:
        contact = sandbox.create("contacts", {"email": "retry@example.com"})
        attempts = [json.loads(receiver.take()["body"])[0]]
        for delay in (60, 300, 900):  # the first three gaps of the emulator's schedule
            settled(sandbox, len(attempts))
            sandbox.clock.advance(delay - 1)
            assert receiver.nothing(0.2), "retried before its delay"
            sandbox.clock.advance(1)
            attempts.append(json.loads(receiver.take()["body"])[0])
        assert [a["attemptNumber"] for a in attempts] == [0, 1, 2, 3]
        assert {a["eventId"] for a in attempts} == {attempts[0]["eventId"]}
        assert attempts[0]["objectId"] == int(contact)
        settled(sandbox, 4)
        statuses = [d["status"] for d in sandbox.webhook_deliveries()]
        assert statuses == [503, 404, None, 200]  # None: no answer within the timeout
        assert sandbox.webhook_deliveries()[2]["error"] == "ReadTimeout"
        sandbox.clock.advance(10**6)
        assert receiver.nothing(0.2)  # delivered: never sent again
    finally:
        sandbox.stop()


def test_an_event_is_dropped_after_ten_attempts_spread_over_a_day(receiver):
    """ref §1.2: "up to 10 times ... spread out over the next 24 hours"; then it is gone."""
    receiver.plan = [500] * 20
    clock = Clock()
    clock.freeze()
    sandbox = HubSpotSandbox(clock=clock, webhooks={
        "target_url": receiver.url, "client_secret": SECRET, "jitter": 0,
        "subscriptions": [{"subscriptionType": "deal.creation"}]})
    sandbox.start()
    try:
        started = sandbox.clock.now()
        sandbox.create("deals", {"dealname": "Doomed"})
        assert json.loads(receiver.take()["body"])[0]["attemptNumber"] == 0
        gaps = []
        for attempt in range(1, 10):
            settled(sandbox, attempt)
            failed_at = datetime_of(sandbox.webhook_deliveries()[-1]["at"])
            due = datetime_of(sandbox.webhook_settings()["nextAttemptAt"])
            sandbox.clock.advance((due - sandbox.clock.now()).total_seconds() - 1)
            assert receiver.nothing(0.1), "sent before it was due"
            sandbox.clock.advance(1)
            assert json.loads(receiver.take()["body"])[0]["attemptNumber"] == attempt
            gaps.append(due - failed_at)
        assert gaps == sorted(gaps) and gaps[0] >= timedelta(minutes=1)  # "varying delays"
        settled(sandbox, 10)
        assert timedelta(hours=20) <= sandbox.clock.now() - started <= timedelta(hours=24, minutes=10)
        sandbox.clock.advance(48 * 3600)
        assert receiver.nothing(0.2)
        assert [e["attemptNumber"] for e in sandbox.dropped_webhook_events()] == [9]
    finally:
        sandbox.stop()


def test_a_refused_connection_is_retried(receiver):
    """ref §1.2: connection failures are retried like error answers."""
    port = free_port()
    clock = Clock()
    clock.freeze()
    sandbox = HubSpotSandbox(clock=clock, webhooks={
        "target_url": f"http://127.0.0.1:{port}/hooks", "client_secret": SECRET, "jitter": 0,
        "subscriptions": [{"subscriptionType": "contact.creation"}]})
    sandbox.start()
    try:
        sandbox.create("contacts", {"email": "nobody@example.com"})
        settled(sandbox, 1)
        assert sandbox.webhook_deliveries()[0]["error"] == "ConnectionError"
        sandbox.configure_webhooks(target_url=receiver.url)  # the daemon comes up
        sandbox.clock.advance(60)
        assert json.loads(receiver.take()["body"])[0]["attemptNumber"] == 1
    finally:
        sandbox.stop()


def test_nothing_is_sent_without_a_target_and_bad_settings_are_refused(sb, receiver):
    """Subscriptions must name a known type and an existing, subscribable property
    (hs_lastmodifieddate cannot be subscribed to, ref §1.2)."""
    sb.configure_webhooks(target_url=None)
    sb.create("contacts", {"email": "lost@example.com"})
    sb.configure_webhooks(target_url=receiver.url)
    assert receiver.nothing()
    for subscriptions, message in (([{"subscriptionType": "contact.merge"}], "unknown subscriptionType"),
                                   ([{"subscriptionType": "deal.propertyChange"}], "needs a propertyName"),
                                   ([{"subscriptionType": "deal.propertyChange", "propertyName": "hs_lastmodifieddate"}],
                                    "cannot be subscribed"),
                                   ([{"subscriptionType": "contact.propertyChange", "propertyName": "nope"}],
                                    "does not exist")):
        with pytest.raises(ValueError, match=message):
            sb.configure_webhooks(subscriptions=subscriptions)
    with pytest.raises(ValueError, match="target_url"):
        sb.configure_webhooks(target_url="ftp://example.com")


def test_webhooks_through_the_http_control_api(sb, receiver):
    """admin.py: a sandbox in another process is pointed at the daemon's receiver over HTTP."""
    settings = requests.get(sb.url + "/_sandbox/webhooks", timeout=5).json()
    assert settings["targetUrl"] == receiver.url and "client_secret" not in json.dumps(settings)
    refused = requests.put(sb.url + "/_sandbox/webhooks", json={"subscriptions": [{"subscriptionType": "x"}]},
                           timeout=5)
    assert refused.status_code == 400 and "subscriptionType" in refused.json()["message"]
    assert requests.put(sb.url + "/_sandbox/webhooks", timeout=5, json={
        "target_url": receiver.url, "client_secret": SECRET,
        "subscriptions": [{"subscriptionType": "contact.creation"}]}).status_code == 200
    sb.create("contacts", {"email": "control@example.com"})
    assert verified(receiver.take(), receiver.url)[0]["subscriptionType"] == "contact.creation"
    settled(sb, 1)
    log = requests.get(sb.url + "/_sandbox/webhooks/deliveries", timeout=5).json()
    assert log["deliveries"][-1]["status"] == 204 and log["dropped"] == []
    assert sb.credentials["webhook_client_secret"] == SECRET and sb.credentials["webhook_app_id"] == str(APP_ID)


def datetime_of(value: str) -> datetime:
    return datetime.fromisoformat(value)


def test_the_suite_points_the_app_at_the_receiver_once_its_port_is_known(receiver, tmp_path):
    """sandbox/suite.py: subscriptions are set up front, the target once the daemon listens."""
    from sandbox.suite import SandboxSuite

    suite = SandboxSuite.start(tmp_path)
    try:
        suite.hubspot.create("contacts", {"email": "early@example.com"})
        suite.set_webhook_target(receiver.url, client_secret=SECRET)
        assert receiver.nothing()  # nothing was queued without a target
        client(suite.hubspot).crm.contacts.basic_api.create({"properties": {"email": "late@example.com"}},
                                                            _request_timeout=TIMEOUT)
        events = verified(receiver.take(), receiver.url)
        assert {(e["subscriptionType"], e.get("propertyName")) for e in events} == {
            ("contact.creation", None), ("contact.propertyChange", "email"),
            ("contact.propertyChange", "lifecyclestage")}
    finally:
        suite.stop()
