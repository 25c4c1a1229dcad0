"""The Google OAuth emulator, driven by google-auth and the GAPIC clients as they really behave.

Sources: google-auth 2.x ``google/oauth2/service_account.py`` (assertion claims, self-signed
JWTs with ``always_use_jwt_access``), https://google.aip.dev/auth/4111, and the refusal bodies
cited in sandbox/googleapis/oauth.py and status.py.
"""
from __future__ import annotations

import json

import google.auth.jwt
import google.auth.transport.requests
import pytest
import requests
from google.ads import datamanager_v1 as dm
from google.ads.datamanager_v1.services.ingestion_service.transports.rest import IngestionServiceRestTransport
from google.api_core import exceptions
from google.auth import exceptions as auth_exceptions
from google.oauth2 import service_account

from sandbox.google_ads import SCOPE, DataManagerSandbox
from sandbox.googleapis import GoogleOAuth

ANALYTICS = "https://www.googleapis.com/auth/analytics.readonly"


@pytest.fixture(scope="module")
def _servers(tmp_path_factory):
    oauth = GoogleOAuth(data_dir=tmp_path_factory.mktemp("oauth"))
    oauth.start()
    ads = DataManagerSandbox(data_dir=tmp_path_factory.mktemp("dm"), oauth=oauth)
    ads.start()
    yield oauth, ads
    ads.stop()
    oauth.stop()


@pytest.fixture
def oauth(_servers):
    return _servers[0]


@pytest.fixture
def ads(_servers):
    _servers[1].reset()
    return _servers[1]


def status_call(ads, credentials=None, *, transport=None, request_id="nope"):
    """One authenticated call (requestStatus:retrieve) through the real client."""
    if transport is None:
        client = dm.IngestionServiceClient(credentials=credentials, transport="rest",
                                           client_options={"api_endpoint": ads.url})
    else:
        client = dm.IngestionServiceClient(transport=transport)
    return client.retrieve_request_status(request={"request_id": request_id}, retry=None)


def test_the_key_file_looks_like_one_from_google_cloud_and_points_at_the_emulator(oauth):
    info = json.loads(oauth.service_account_file.read_text())
    assert info["type"] == "service_account" and info["token_uri"] == oauth.token_uri
    assert info["private_key"].startswith("-----BEGIN PRIVATE KEY-----")
    assert oct(oauth.service_account_file.stat().st_mode & 0o777) == "0o600"


def test_gapic_clients_sign_their_own_jwt_and_the_api_accepts_it(oauth, ads):
    """Default GAPIC behaviour: no token request at all; an unknown request id is the API's answer."""
    before = len(oauth.request_log())
    credentials = service_account.Credentials.from_service_account_file(oauth.service_account_file, scopes=[SCOPE])
    with pytest.raises(exceptions.BadRequest) as refused:
        status_call(ads, credentials)
    assert refused.value.reason == "INVALID_REQUEST_ID"
    assert len(oauth.request_log()) == before


def test_an_audience_jwt_without_scopes_is_good_for_its_own_api(ads, oauth):
    credentials = service_account.Credentials.from_service_account_file(oauth.service_account_file)
    with pytest.raises(exceptions.BadRequest) as refused:
        status_call(ads, credentials)
    assert refused.value.reason == "INVALID_REQUEST_ID"


def test_the_token_endpoint_grants_an_expiring_token_for_a_jwt_bearer_assertion(oauth, ads):
    credentials = service_account.Credentials.from_service_account_file(oauth.service_account_file, scopes=[SCOPE])
    transport = IngestionServiceRestTransport(host=ads.url, credentials=credentials, always_use_jwt_access=False)
    with pytest.raises(exceptions.BadRequest):
        status_call(ads, transport=transport)
    grant = oauth.request_log()[-1]
    assert grant["status"] == 200 and grant["scopes"] == [SCOPE]
    assert credentials.token.startswith("ya29.") and credentials.expiry is not None


def test_a_token_without_the_datamanager_scope_is_refused_with_403(oauth, ads):
    credentials = service_account.Credentials.from_service_account_file(oauth.service_account_file,
                                                                        scopes=[ANALYTICS])
    with pytest.raises(exceptions.Forbidden) as refused:
        status_call(ads, credentials)
    assert refused.value.reason == "ACCESS_TOKEN_SCOPE_INSUFFICIENT"
    assert refused.value.message.endswith("Request had insufficient authentication scopes.")


def test_a_jwt_for_another_api_is_refused_with_401(oauth, ads):
    jwt_for_analytics = google.auth.jwt.Credentials.from_service_account_file(
        str(oauth.service_account_file), audience="https://analyticsdata.googleapis.com/")
    jwt_for_analytics.refresh(None)
    token = jwt_for_analytics.token
    token = token.decode() if isinstance(token, bytes) else token
    response = requests.get(ads.url + "/v1/requestStatus:retrieve", params={"requestId": "x"}, timeout=5,
                            headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401
    assert response.json()["error"]["status"] == "UNAUTHENTICATED"


def test_no_credential_and_a_made_up_token_are_refused_with_401(ads):
    missing = requests.get(ads.url + "/v1/requestStatus:retrieve", params={"requestId": "x"}, timeout=5)
    assert missing.status_code == 401
    error = missing.json()["error"]
    assert error["details"][0]["reason"] == "CREDENTIALS_MISSING"
    assert error["message"].startswith("Request is missing required authentication credential.")
    made_up = requests.get(ads.url + "/v1/requestStatus:retrieve", params={"requestId": "x"}, timeout=5,
                           headers={"Authorization": "Bearer ya29.not-a-token"})
    assert made_up.status_code == 401
    assert made_up.json()["error"]["message"].startswith("Request had invalid authentication credentials.")
    assert "invalid_token" in made_up.headers["WWW-Authenticate"]


def test_an_expired_access_token_is_refused_and_the_client_recovers_by_refreshing(oauth, ads):
    credentials = service_account.Credentials.from_service_account_file(oauth.service_account_file, scopes=[SCOPE])
    credentials.refresh(google.auth.transport.requests.Request())
    old = credentials.token
    assert oauth.expire_tokens() >= 1
    expired = requests.get(ads.url + "/v1/requestStatus:retrieve", params={"requestId": "x"}, timeout=5,
                           headers={"Authorization": f"Bearer {old}"})
    assert expired.status_code == 401 and expired.json()["error"]["details"][0]["reason"] == "ACCESS_TOKEN_EXPIRED"
    transport = IngestionServiceRestTransport(host=ads.url, credentials=credentials, always_use_jwt_access=False)
    with pytest.raises(exceptions.BadRequest):   # AuthorizedSession refreshed on the 401 and retried
        status_call(ads, transport=transport)
    assert credentials.token != old


def test_a_deleted_key_stops_both_the_grant_and_self_signed_jwts(tmp_path, oauth, ads):
    key_file = oauth.create_service_account("ephemeral@closedloop-sandbox.iam.gserviceaccount.com",
                                            key_path=tmp_path / "ephemeral.json")
    ads.grant_access("ephemeral@closedloop-sandbox.iam.gserviceaccount.com")
    oauth.delete_keys("ephemeral@closedloop-sandbox.iam.gserviceaccount.com")
    credentials = service_account.Credentials.from_service_account_file(key_file, scopes=[SCOPE])
    with pytest.raises(exceptions.Unauthorized):
        status_call(ads, credentials)
    with pytest.raises(auth_exceptions.RefreshError, match="invalid_grant: Invalid JWT Signature."):
        credentials.refresh(google.auth.transport.requests.Request())


def test_the_token_endpoint_refuses_unknown_scopes_and_other_grants(oauth):
    credentials = service_account.Credentials.from_service_account_file(
        oauth.service_account_file, scopes=["https://www.googleapis.com/auth/not-a-scope"])
    with pytest.raises(auth_exceptions.RefreshError, match="invalid_scope"):
        credentials.refresh(google.auth.transport.requests.Request())
    other = requests.post(oauth.token_uri, data={"grant_type": "client_credentials"}, timeout=5)
    assert other.status_code == 400 and other.json()["error"] == "unsupported_grant_type"


def test_a_public_key_registered_from_outside_is_trusted(tmp_path, oauth, ads):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    email = "outside@other-project.iam.gserviceaccount.com"
    oauth.register_key(email, private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode(), "outside-key-1",
        project_id="other-project")
    info = {"type": "service_account", "project_id": "other-project", "private_key_id": "outside-key-1",
            "private_key": private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                 serialization.NoEncryption()).decode(),
            "client_email": email, "token_uri": oauth.token_uri}
    credentials = service_account.Credentials.from_service_account_info(info, scopes=[SCOPE])
    with pytest.raises(exceptions.BadRequest) as refused:   # past authentication: the API's own answer
        status_call(ads, credentials)
    assert refused.value.reason == "INVALID_REQUEST_ID"
