"""Credentials that keep working for months: HubSpot OAuth tokens refreshed through the 2026-03
endpoint (before expiry, once on a 401, never twice at once), Salesforce sessions re-established
when they expire mid-batch. Real clients against the sandbox; time moves on the shared clock."""
from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone

import pytest

from adapters.errors import AuthError
from adapters.http import make_session
from adapters.hubspot import HubSpotAdapter, HubSpotCredentials
from adapters.hubspot_auth import HubSpotOAuth
from sandbox.clock import Clock
from sandbox.hubspot import HubSpotSandbox
from support import World
from sync.capture.beacon import Hit
from sync.capture.identity import hash_email
from sync.capture.writer import BeaconWriter

UA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36"


def oauth_config(text: str) -> str:
    return text.replace("[hubspot]\nenabled = true\n", '[hubspot]\nenabled = true\nauth = "oauth"\n')


def oauth_environ(world) -> dict[str, str]:
    c = world.hubspot.credentials
    return {"CLOSEDLOOP_HUBSPOT_CLIENT_ID": c["client_id"], "CLOSEDLOOP_HUBSPOT_CLIENT_SECRET": c["client_secret"],
            "CLOSEDLOOP_HUBSPOT_REFRESH_TOKEN": c["refresh_token"]}


def person(world, n: int, email: str) -> None:
    moment = datetime.now(timezone.utc) - timedelta(hours=2)
    BeaconWriter(world.store).write([Hit(
        f"visitor{n:04d}", "identify", moment, "https://www.example.com/?utm_source=google&utm_medium=cpc", "",
        utm={}, click_ids={}, ga_client_id=f"{n}.1700000000", ga_session_id=None, language="en", timezone="UTC",
        user_agent=UA, consent=None, session_key=None, conversion_type="form", email_sha256=hash_email(email))])


@pytest.fixture
def world(tmp_path):
    world = World(tmp_path, clock=Clock(), sleep=lambda seconds: None, hubspot={"token_lifetime_seconds": 120})
    world.create_fields()
    world.reconfigure(oauth_config, oauth_environ(world))
    yield world
    world.close()


def test_hubspot_oauth_through_three_expiries_without_a_failed_job(world):
    hs = world.hubspot
    hs.reset_log()
    contacts = []
    expired_mid_job = False
    for expiry in range(4):
        person(world, expiry, f"oauth{expiry}@x.example")
        contacts.append(hs.create("contacts", {"email": f"oauth{expiry}@x.example"}))
        if expiry == 3:  # the last one expires in the middle of a run, between the read and the write
            def expire_before_write(request):
                nonlocal expired_mid_job
                if "batch/update" in request.path and not expired_mid_job:
                    expired_mid_job = True
                    world.clock.advance(121)
            hs.before_request = expire_before_write
        outcome = world.run("enrich")
        assert outcome.result.remotes["hubspot"].status == "ok"
        assert hs.record("contacts", contacts[-1])["cl_first_click_source"] == "google"
        if expiry < 2:
            world.clock.advance(121)  # the token dies between runs
    hs.before_request = None
    assert expired_mid_job
    log = hs.request_log()
    token_calls = [entry for entry in log if entry["path"].startswith("/oauth/")]
    assert {entry["path"] for entry in token_calls} == {"/oauth/2026-03/token"}  # never the retiring v1
    assert all(entry["status"] == 200 for entry in token_calls)
    assert len(token_calls) == 4  # the first token, then one refresh per expiry
    refused = [entry for entry in log if entry["status"] == 401]
    assert len(refused) == 3  # each expiry costs one refused call, retried once with the new token
    assert not world.runner.remotes.state("hubspot").paused


def test_an_uninstalled_app_pauses_hubspot_and_salesforce_goes_on(world):
    world.hubspot.revoke_refresh_token()
    world.hubspot.expire_tokens()
    lead = world.salesforce.create("Lead", {"LastName": "Sam", "Company": "Acme", "Email": "sam@acme.example"})
    person(world, 7, "sam@acme.example")
    outcome = world.run("enrich", expect="paused")
    assert outcome.result.remotes["salesforce"].status == "ok"
    assert world.salesforce.record(lead)["CL_First_Click_Source__c"] == "google"
    state = world.runner.remotes.state("hubspot")
    assert state.reason == "auth" and "invalid_grant: refresh token is invalid, expired or revoked" in state.message
    assert world.hubspot.credentials["client_secret"] not in state.message


@pytest.fixture
def hubspot():
    sandbox = HubSpotSandbox(clock=Clock(frozen_at=datetime(2026, 12, 2, 9, 0, tzinfo=timezone.utc)),
                             latency_seconds=0.05)
    sandbox.start()
    yield sandbox
    sandbox.stop()


def oauth_adapter(sandbox, monotonic=None) -> HubSpotAdapter:
    c = sandbox.credentials
    return HubSpotAdapter(HubSpotCredentials(client_id=c["client_id"], client_secret=c["client_secret"],
                                             refresh_token=c["refresh_token"]), host=sandbox.url,
                          **({"monotonic": monotonic} if monotonic else {}))


def test_a_token_is_refreshed_before_it_expires(hubspot):
    now = [1000.0]
    adapter = oauth_adapter(hubspot, monotonic=lambda: now[0])
    adapter.describe_fields("contacts")
    for _ in range(3):  # 27 minutes pass on both clocks, three times over
        now[0] += 1620
        hubspot.advance(1620)
        adapter.forget_metadata()
        adapter.describe_fields("contacts")
    assert adapter.oauth.refreshes == 4
    assert [entry["status"] for entry in hubspot.request_log() if entry["status"] == 401] == []


def test_two_jobs_never_refresh_at_once(hubspot):
    c = hubspot.credentials
    oauth = HubSpotOAuth(hubspot.url, c["client_id"], c["client_secret"], c["refresh_token"],
                         http=make_session(timeout=5), timeout=5)
    first = oauth.token()
    hubspot.expire_tokens()
    start = threading.Barrier(4)
    seen = []

    def job():
        start.wait()
        seen.append(oauth.rejected(first))

    threads = [threading.Thread(target=job) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert len(set(seen)) == 1 and seen[0] != first
    assert hubspot.oauth.refreshes == 2  # the first token and exactly one refresh for all four


def test_a_refused_refresh_names_the_fix_and_no_secret(hubspot):
    c = hubspot.credentials
    oauth = HubSpotOAuth(hubspot.url, c["client_id"], c["client_secret"], "revoked-token",
                         http=make_session(timeout=5), timeout=5)
    with pytest.raises(AuthError) as caught:
        oauth.token()
    message = caught.value.user_message
    assert message.startswith("HubSpot refused the OAuth refresh (invalid_grant: refresh token is invalid")
    assert "refresh_token_env" in message and c["client_secret"] not in message and "revoked-token" not in message


def jwt_config(world):
    c = world.salesforce.credentials
    return lambda text: text.replace('auth = "client_credentials"', f'auth = "jwt"\nusername = "{c["username"]}"\n'
                                                                    f'private_key_file = "{c["private_key_path"]}"')


@pytest.fixture
def sf_world(tmp_path):
    world = World(tmp_path, clock=Clock(), sleep=lambda seconds: None, salesforce={"session_seconds": 600})
    world.create_fields()
    yield world
    world.close()


@pytest.mark.parametrize("flow", ["jwt", "client_credentials"])
def test_salesforce_sessions_expire_mid_batch_and_over_time(sf_world, flow):
    world, sf = sf_world, sf_world.salesforce
    if flow == "jwt":
        world.reconfigure(jwt_config(world))
    audiences = []

    def note_audience(request):
        if request.path == "/services/oauth2/token":
            import jwt
            assertion = request.form().get("assertion")
            if assertion:
                audiences.append(jwt.decode(assertion, options={"verify_signature": False})["aud"])
    sf.before_request = note_audience
    leads, logins = [], None
    for n in range(3):
        person(world, 100 + n, f"sf{n}@x.example")
        leads += [sf.create("Lead", {"LastName": f"L{n}{k}", "Company": "X", "Email": f"sf{n}@x.example"})
                  for k in range(2)]
        if n == 1:  # the session dies between reading the page and writing it
            sf.inject("expire_session", method="PATCH", path_contains="composite/sobjects")
        outcome = world.run("enrich")
        assert outcome.result.remotes["salesforce"].status == "ok"
        assert all(sf.record(lead)["CL_First_Click_Source__c"] == "google" for lead in leads)
        if n == 0:
            logins = sf.auth.logins
            world.clock.advance(601)  # idle longer than the org's session timeout
    sf.before_request = None
    assert sf.auth.logins - logins == 2  # after the idle timeout, after the mid-batch expiry: once each
    if flow == "jwt":
        assert audiences and set(audiences) == {"https://login.salesforce.com"}  # not the My Domain login_url
    refused = [e for e in sf.request_log() if e["status"] == 401]
    assert len(refused) == 2 and not world.runner.remotes.state("salesforce").paused


def test_a_session_that_dies_again_at_once_is_an_auth_pause(sf_world):
    sf_world.salesforce.expire_sessions(keep_rejecting=True)
    outcome = sf_world.run("enrich", expect="paused")
    assert outcome.result.remotes["salesforce"].status == "paused"
    assert outcome.result.remotes["hubspot"].status == "ok"
    assert sf_world.runner.remotes.state("salesforce").reason == "auth"


def test_jwt_audience_defaults_and_refuses_a_my_domain(write_config):
    from adapters.salesforce_auth import default_audience
    from sync.config import load_config

    assert default_audience("https://acme.my.salesforce.com") == "https://login.salesforce.com"
    assert default_audience("https://acme--uat.sandbox.my.salesforce.com") == "https://test.salesforce.com"
    assert default_audience("https://test.salesforce.com/") == "https://test.salesforce.com"
    path = write_config("""
        [salesforce]
        enabled = true
        auth = "jwt"
        username = "int@acme.example"
        login_url = "https://acme.my.salesforce.com"
        audience = "https://acme.my.salesforce.com"
    """)
    with pytest.raises(Exception) as caught:
        load_config(path, environ={"CLOSEDLOOP_SALESFORCE_CLIENT_ID": "x", "CLOSEDLOOP_SALESFORCE_PRIVATE_KEY": "k"})
    assert f"{path}:7: [salesforce] audience: a My Domain URL is not a documented JWT audience" in str(caught.value)
