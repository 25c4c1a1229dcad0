"""The collect endpoint against hostile input, on SQLite and PostgreSQL."""
from __future__ import annotations

import hashlib
import json
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlmodel import func, select
from starlette.testclient import TestClient

from state.models import Identity, Touchpoint, Visitor
from sync.capture.app import create_app
from sync.capture.writer import BeaconWriter
from sync.config import load_config

BROWSER_UA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36"
SITE = "https://www.example.com"


@pytest.fixture
def collector(store, write_config):
    config = load_config(write_config(f"""
        [collector]
        allowed_origins = ["{SITE}"]
        max_body_bytes = 4096
    """), environ={})
    writer = BeaconWriter(store, linger_seconds=0.0).start()
    client = TestClient(create_app(config, store, writer=writer), headers={"User-Agent": BROWSER_UA})
    yield client, writer, store
    writer.stop()


def beacon(**overrides):
    body = {"v": 1, "type": "pageview", "vid": "a1b2c3d4e5f6a7b8", "ts": int(time.time() * 1000),
            "url": f"{SITE}/pricing?utm_source=google&utm_medium=cpc&gclid=Cj0abc",
            "referrer": "https://www.google.com/", "ga_client_id": "GA1.1.123456789.1700000000",
            "lang": "en-GB", "tz": "Europe/London", "utm": {"utm_source": "google", "utm_medium": "cpc"},
            "click_ids": {"gclid": "Cj0abc"}}
    body.update(overrides)
    return body


def post(client, body, content_type="text/plain;charset=UTF-8", **headers):
    data = body if isinstance(body, (bytes, str)) else json.dumps(body)
    return client.post("/collect", content=data, headers={"Content-Type": content_type, "Origin": SITE, **headers})


def count(store, model, *where):
    with store.session(readonly=True) as session:
        return session.exec(select(func.count()).select_from(model).where(*where)).one()


def test_pageview_is_stored(collector):
    client, writer, store = collector
    response = post(client, beacon())
    assert response.status_code == 204
    assert response.headers["access-control-allow-origin"] == SITE
    writer.flush()
    with store.session(readonly=True) as session:
        hit = session.exec(select(Touchpoint)).one()
        visitor = session.get(Visitor, "a1b2c3d4e5f6a7b8")
        identity = session.exec(select(Identity)).one()
    assert (hit.kind, hit.utm_source, hit.utm_medium, hit.gclid) == ("pageview", "google", "cpc", "Cj0abc")
    assert hit.url.endswith("gclid=Cj0abc") and hit.referrer == "https://www.google.com/"
    assert hit.user_agent == BROWSER_UA and hit.language == "en-GB" and hit.timezone == "Europe/London"
    assert hit.ga_client_id == visitor.ga_client_id == "123456789.1700000000"
    assert (identity.kind, identity.value) == ("ga_client_id", "123456789.1700000000")


def test_json_content_type_and_preflight(collector):
    client, writer, store = collector
    preflight = client.options("/collect", headers={"Origin": SITE, "Access-Control-Request-Method": "POST"})
    assert preflight.status_code == 204 and preflight.headers["access-control-allow-origin"] == SITE
    assert post(client, beacon(), content_type="application/json").status_code == 204


def test_email_is_hashed_and_never_stored_in_clear(collector):
    client, writer, store = collector
    response = post(client, beacon(type="identify", email="  Jane.Doe@Example.COM ", conversion_type="form"))
    assert response.status_code == 204
    writer.flush()
    with store.session(readonly=True) as session:
        emails = session.exec(select(Identity.value).where(Identity.kind == "email_sha256")).all()
        dump = json.dumps([row.model_dump(mode="json") for row in session.exec(select(Touchpoint)).all()])
    assert emails == [hashlib.sha256(b"jane.doe@example.com").hexdigest()]
    assert "jane" not in dump.lower()


@pytest.mark.parametrize("body, reason", [
    (b"{not json", "body is not valid JSON"),
    (b"[1, 2]", "body must be a JSON object"),
    (beacon(v=2), "unsupported beacon version (expected v = 1)"),
    (beacon(type="purchase"), "field 'type': expected 'pageview', 'identify' or 'conversion'"),
    (beacon(ts="1700000000000"), "field 'ts': expected a valid integer"),
    (beacon(ts=int(time.time() * 1000) + 3_600_000), "field 'ts': timestamp is in the future"),
    (beacon(vid="x"), "field 'vid': has the wrong format"),
    (beacon(url=["https://x"]), "field 'url': expected a valid string"),
    (beacon(type="identify", email="not-an-email"), "field 'email': not an email address"),
    (beacon(type="identify"), "an identify beacon needs 'email' or 'phone'"),
    (beacon(type="conversion"), "a conversion beacon needs 'conversion_type' (form, call, chat or other)"),
    ({k: v for k, v in beacon().items() if k != "vid"}, "field 'vid' is required"),
    (beacon(utm={"utm_source": 5}), "field 'utm.utm_source': expected a valid string"),
])
def test_bad_beacons_get_400_with_a_reason(collector, body, reason):
    client, writer, store = collector
    response = post(client, body)
    assert response.status_code == 400
    assert response.json() == {"error": reason}
    writer.flush()
    assert count(store, Touchpoint) == 0


def test_oversized_and_wrong_content_type(collector):
    client, writer, store = collector
    huge = beacon(url="https://www.example.com/" + "a" * 5000)
    assert post(client, huge).json() == {"error": "body exceeds 4096 bytes"}
    assert post(client, beacon(), content_type="application/x-www-form-urlencoded").status_code == 400
    writer.flush()
    assert count(store, Touchpoint) == 0


def test_long_values_are_capped_not_rejected(collector):
    client, writer, store = collector
    long_values = beacon(referrer="https://r.example/" + "r" * 2500, utm={"utm_campaign": "c" * 1000})
    assert post(client, long_values).status_code == 204
    writer.flush()
    with store.session(readonly=True) as session:
        hit = session.exec(select(Touchpoint)).one()
    assert len(hit.referrer) == 2048 and len(hit.utm_campaign) == 256


def test_foreign_origin_is_refused(collector):
    client, writer, store = collector
    response = post(client, beacon(), Origin="https://evil.example")
    assert response.status_code == 403 and response.json() == {"error": "origin not allowed"}
    assert "access-control-allow-origin" not in response.headers


@pytest.mark.parametrize("agent", [
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/126.0 Safari/537.36",
    "python-requests/2.32.0",
])
def test_bots_are_dropped_silently(collector, agent):
    client, writer, store = collector
    assert post(client, beacon(), **{"User-Agent": agent}).status_code == 204
    assert post(client, beacon(ua=agent)).status_code == 204
    writer.flush()
    assert count(store, Touchpoint) == 0


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
                           lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(), children,
                                                                                             max_size=4),
                           max_leaves=12)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(mutation=st.dictionaries(st.sampled_from(list(beacon()) + ["email", "phone", "conversion_type", "sid",
                                                                   "ga_session_id", "consent", "junk"]),
                                json_values, max_size=5),
       raw=st.binary(max_size=300))
def test_fuzzed_beacons_never_500(collector, mutation, raw):
    """Whatever arrives, the answer is 204 or 400 — and a 400 stores nothing."""
    client, writer, store = collector
    before = count(store, Touchpoint)
    response = post(client, beacon(**mutation))
    assert response.status_code in (204, 400), response.text
    raw_response = post(client, raw)
    assert raw_response.status_code in (204, 400)
    writer.flush()
    after = count(store, Touchpoint)
    assert after - before == (response.status_code == 204) + (raw_response.status_code == 204)


def test_tracker_script_is_small_and_configured(collector):
    client, writer, store = collector
    response = client.get("/t.js")
    assert response.status_code == 200 and response.headers["content-type"].startswith("application/javascript")
    assert len(response.content) < 5 * 1024
    assert '"endpoint":"http://127.0.0.1:8700/collect"' in response.text
