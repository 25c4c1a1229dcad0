"""The collect endpoint against hostile input, on SQLite and PostgreSQL."""
from __future__ import annotations

import hashlib
import json
import time
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlmodel import func, select
from starlette.testclient import TestClient

from state.models import DeadLetter, Identity, Touchpoint, Visitor
from support import run_coroutine
from sync.capture.app import create_app
from sync.config import load_config

BROWSER_UA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36"
SITE = "https://www.example.com"


NO_LIMITS = "ip_rate_per_second = 0\nvisitor_rate_per_second = 0"


def serve(store, write_config, settings: str = NO_LIMITS, max_body_bytes: int = 4096):
    """The collector app over ``store`` (its own writer runs while the client is open)."""
    config = load_config(write_config(f'[collector]\nallowed_origins = ["{SITE}"]\n'
                                      f'max_body_bytes = {max_body_bytes}\n{settings}\n'), environ={})
    return TestClient(create_app(config, store), headers={"User-Agent": BROWSER_UA})


@pytest.fixture
def collector(store, write_config):
    """(client, writer, store): limits off, so that many requests from one test client pass."""
    with serve(store, write_config) as client:
        yield client, client.app.state.writer, store


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
    with store.session(readonly=True) as session:
        emails = session.exec(select(Identity.value).where(Identity.kind == "email_sha256")).all()
        dump = json.dumps([row.model_dump(mode="json") for row in session.exec(select(Touchpoint)).all()])
    assert emails == [hashlib.sha256(b"jane.doe@example.com").hexdigest()]
    assert "jane" not in dump.lower()


@pytest.mark.parametrize("body, reason", [
    (b"{not json", "body is not valid JSON"),
    (b"[1, 2]", "beacon 0: must be a JSON object"),
    (b'"a string"', "body must be a JSON object (or an array of them)"),
    (beacon(v=2), "unsupported beacon version (expected v = 1)"),
    (beacon(type="purchase"), "field 'type': expected 'pageview', 'identify' or 'conversion'"),
    (beacon(ts="1700000000000"), "field 'ts': expected a valid integer"),
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
    assert count(store, Touchpoint) == 0


def nested(depth: int) -> str:
    return json.dumps(beacon())[:-1] + ', "junk": ' + "[" * depth + "]" * depth + "}"


@pytest.mark.parametrize("body, reason", [
    (nested(3000), "body nests deeper than 8 levels"),
    (nested(8), "body nests deeper than 8 levels"),
    (json.dumps(beacon())[:-1] + ', "junk": ' + "9" * 4301 + "}", "a number is longer than 32 characters"),
    (json.dumps(beacon())[:-1] + ', "junk": 1e999}', "a number is out of range"),
    (json.dumps(beacon())[:-1] + ', "junk": NaN}', "body is not valid JSON (NaN is not a JSON number)"),
    (json.dumps(beacon(junk="x" * 4097)), "field 'junk': longer than 4096 characters"),
    (json.dumps(beacon(**{f"f{n}": n for n in range(60)})), "field 'body': more than 64 fields"),
    (json.dumps(beacon(utm={f"k{n}": "v" for n in range(65)})), "field 'utm': more than 64 fields"),
    (json.dumps(beacon(junk=list(range(65)))), "field 'junk': more than 64 items"),
    (json.dumps(beacon(**{"\ud800": "x" * 4097})), "field '\ufffd': longer than 4096 characters"),
    ("[]", "an empty batch (send one beacon object, or an array of them)"),
    (json.dumps([beacon(vid=f"batch{n:04d}") for n in range(21)]), "a batch holds at most 20 beacons"),
    (json.dumps([beacon(), beacon(ts="soon")]), "beacon 1: field 'ts': expected a valid integer"),
    (b'{"v": 1, "url": "\xff"}', "body is not valid JSON (it must be UTF-8)"),
])
def test_every_bound_is_refused_with_a_4xx_and_its_reason(store, write_config, body, reason):
    """Depth, digits, string length, field count, batch size: each refused, never a 500; a batch
    with one bad beacon stores none of them."""
    with serve(store, write_config, max_body_bytes=65536) as client:
        response = post(client, body if isinstance(body, bytes) else body.encode())
    assert response.status_code == 400, response.text
    assert response.json() == {"error": reason}
    assert count(store, Touchpoint) == 0


def test_a_batch_may_hold_more_beacons_than_an_object_fields(store, write_config):
    with serve(store, write_config, NO_LIMITS + "\nmax_batch_beacons = 100", max_body_bytes=65536) as client:
        accepted = post(client, [beacon(vid=f"big{n:05d}", url=f"{SITE}/") for n in range(80)])
        refused = post(client, [beacon(vid=f"big{n:05d}", url=f"{SITE}/") for n in range(101)])
    assert accepted.status_code == 204 and count(store, Touchpoint) == 80
    assert refused.json() == {"error": "a batch holds at most 100 beacons"}


def test_a_batch_is_stored_whole(store, write_config):
    with serve(store, write_config, max_body_bytes=16384) as client:
        response = post(client, [beacon(vid=f"batch{n:04d}") for n in range(20)])
    assert response.status_code == 204
    assert count(store, Touchpoint) == 20 and count(store, Visitor) == 20


def test_client_timestamps_are_clamped_to_the_arrival(collector):
    """Not in the future, and not earlier than the configured skew (6 hours by default) before
    arrival: a beacon dated 1970 is stored as six hours old."""
    client, writer, store = collector
    sent = datetime.now(timezone.utc)
    assert post(client, beacon(vid="future0001", ts=int(time.time() * 1000) + 3_600_000)).status_code == 204
    assert post(client, beacon(vid="ancient001", ts=0)).status_code == 204
    assert post(client, beacon(vid="recent0001", ts=int((time.time() - 3600) * 1000))).status_code == 204
    assert post(client, beacon(vid="hugets0001", ts=10 ** 30)).status_code == 204
    with store.session(readonly=True) as session:
        hits = {hit.visitor_id: hit for hit in session.exec(select(Touchpoint)).all()}
    future, ancient, recent, huge = (hits[v] for v in ("future0001", "ancient001", "recent0001", "hugets0001"))
    assert future.occurred_at == future.received_at and huge.occurred_at == huge.received_at
    assert ancient.occurred_at == ancient.received_at - timedelta(hours=6)
    assert abs(recent.occurred_at - (sent - timedelta(hours=1))) < timedelta(seconds=5)


def test_text_is_made_valid_before_it_is_stored(collector):
    """NUL removed, lone surrogates replaced, a surrogate pair joined; RTL marks and emoji kept.
    Both stores read back the same valid text."""
    client, writer, store = collector
    body = json.dumps(beacon(utm={"utm_campaign": "a\u0000b\ud800c\ud83d\ude00\u200f\U0001f600"},
                             referrer="https://r.example/\udfff"))
    assert post(client, body).status_code == 204
    with store.session(readonly=True) as session:
        hit = session.exec(select(Touchpoint)).one()
    assert hit.utm_campaign == "ab\ufffdc\U0001f600\u200f\U0001f600"
    assert hit.referrer == "https://r.example/\ufffd"


def test_oversized_and_wrong_content_type(collector):
    client, writer, store = collector
    huge = beacon(url="https://www.example.com/" + "a" * 5000)
    response = post(client, huge)
    assert response.status_code == 413 and response.json() == {"error": "body exceeds 4096 bytes"}
    assert post(client, beacon(), content_type="application/x-www-form-urlencoded").status_code == 415
    assert count(store, Touchpoint) == 0


def test_long_values_are_capped_not_rejected(collector):
    client, writer, store = collector
    long_values = beacon(referrer="https://r.example/" + "r" * 2500, utm={"utm_campaign": "c" * 1000})
    assert post(client, long_values).status_code == 204
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
    after = count(store, Touchpoint)
    assert after - before == (response.status_code == 204) + (raw_response.status_code == 204)


def test_tracker_script_is_small_and_configured(collector):
    client, writer, store = collector
    response = client.get("/t.js")
    assert response.status_code == 200 and response.headers["content-type"].startswith("application/javascript")
    assert len(response.content) < 5 * 1024
    assert '"endpoint":"http://127.0.0.1:8700/collect"' in response.text


def test_per_address_and_per_visitor_limits(store, write_config):
    with serve(store, write_config, "ip_burst = 5\nip_rate_per_second = 0.001\nvisitor_burst = 3\n"
                                    "visitor_rate_per_second = 0.001") as client:
        answers = [post(client, beacon(vid="limited001")).status_code for _ in range(4)]
        assert answers == [204, 204, 204, 429]
        other = post(client, beacon(vid="another001"))
        assert other.status_code == 204
        refused = post(client, beacon(vid="third00001"))
        assert refused.status_code == 429 and refused.json() == {"error": "too many beacons from this address; "
                                                                          "retry later"}
        assert refused.headers["retry-after"] == "1"
    assert count(store, Touchpoint) == 4


def test_identify_claims_from_many_new_devices_are_limited_and_logged(store, write_config, caplog):
    with serve(store, write_config, "ip_rate_per_second = 0\nidentify_devices_per_email = 3") as client:
        answers = [post(client, beacon(vid=f"claimer{n:03d}", type="identify", email="ceo@victim.example")).status_code
                   for n in range(5)]
        again = post(client, beacon(vid="claimer000", type="identify", email="CEO@victim.example"))
        other = post(client, beacon(vid="claimer004", type="identify", email="me@elsewhere.example"))
    assert answers == [204, 204, 204, 429, 429]
    assert again.status_code == 204 and other.status_code == 204  # known devices, other emails: not limited
    assert "claimed by more than 3 new devices" in caplog.text and "victim" not in caplog.text
    with store.session(readonly=True) as session:
        claimers = session.exec(select(Identity.visitor_id).where(
            Identity.value == hashlib.sha256(b"ceo@victim.example").hexdigest())).all()
    assert sorted(claimers) == ["claimer000", "claimer001", "claimer002"]


def test_a_row_the_database_refuses_is_dead_lettered_and_the_rest_is_stored(collector):
    """The writer splits a refused batch down to the bad row. A hit whose text bypassed the edge
    normalisation (NUL: PostgreSQL refuses it) and one that breaks a NOT NULL constraint (both
    stores refuse it) go to the dead letters with the database's reason; the others are stored."""

    from sync.capture.beacon import Hit

    client, writer, store = collector
    now = datetime.now(timezone.utc)

    def hit(visitor, **changes):
        values = dict(visitor_id=visitor, kind="pageview", occurred_at=now, url="https://www.example.com/",
                      referrer="", utm={}, click_ids={}, ga_client_id=None, ga_session_id=None, language=None,
                      timezone=None, user_agent="UA", conversion_type=None, consent=None, session_key=None)
        return Hit(**{**values, **changes})

    poison = [hit("nullkind01", kind=None)]
    if store.dialect == "postgresql":
        poison.append(hit("nulchar001", url="https://www.example.com/\x00"))
    good = [hit(f"goodhit{n:03d}") for n in range(10)]
    batch = good[:5] + poison + good[5:]

    async def send():
        return await writer.store_hits(batch, timeout=30)

    receipt = run_coroutine(send())
    assert len(receipt.refused) == len(poison) and not receipt.stored
    with store.session(readonly=True) as session:
        stored = set(session.exec(select(Touchpoint.visitor_id)).all())
        letters = session.exec(select(DeadLetter)).all()
    assert stored == {h.visitor_id for h in good}
    assert {(letter.job, letter.code, letter.record_id) for letter in letters} == \
        {("collector", "STORE_REFUSED", h.visitor_id) for h in poison}
    nul = next((letter for letter in letters if letter.record_id == "nulchar001"), None)
    if nul is not None:
        assert nul.payload["beacon"]["url"] == ascii("https://www.example.com/\x00")
    assert writer.health()["rows_refused"] == len(poison) and writer.health()["queue_depth"] == 0


@pytest.mark.parametrize("trusted", [True, False])
def test_behind_a_reverse_proxy_limits_count_the_forwarded_client(store, write_config, caplog, trusted):
    """With the proxy in trusted_proxies, X-Forwarded-For names the client the limits count;
    without, the header is not believed (anyone could send it) and the proxy's address counts."""
    import requests

    from support import free_port
    from sync.capture.server import BackgroundServer

    config = load_config(write_config(f"""
        [collector]
        allowed_origins = ["{SITE}"]
        ip_burst = 2
        ip_rate_per_second = 0.001
        visitor_rate_per_second = 0
        trusted_proxies = {'["127.0.0.1"]' if trusted else '[]'}
    """), environ={})
    port = free_port()
    server = BackgroundServer(create_app(config, store), "127.0.0.1", port,
                              trusted_proxies=config.settings.collector.trusted_proxies).start()
    try:
        def send(client):
            return requests.post(f"http://127.0.0.1:{port}/collect", data=json.dumps(beacon()), timeout=10,
                                 headers={"Content-Type": "text/plain", "Origin": SITE, "User-Agent": BROWSER_UA,
                                          "X-Forwarded-For": client}).status_code
        answers = [send(client) for client in ("203.0.113.1", "203.0.113.1", "203.0.113.1", "203.0.113.2")]
    finally:
        server.stop()
    assert answers == ([204, 204, 429, 204] if trusted else [204, 204, 429, 429])
    assert ("trusted_proxies is empty" in caplog.text) is not trusted


def test_every_field_of_a_beacon_reaches_its_column():
    """The writer's compiled insert names its columns once; a column the row builder fills but the
    statement leaves out is silently dropped (the ad-consent signals once were)."""
    from datetime import datetime, timezone

    from sync.capture.beacon import Hit
    from sync.capture.writer import TOUCHPOINT_COLUMNS, _touchpoint_row

    moment = datetime(2026, 12, 1, tzinfo=timezone.utc)
    hit = Hit("v1", "pageview", moment, "https://x.example/", "", utm={}, click_ids={}, ga_client_id=None,
              ga_session_id=None, language="en", timezone="UTC", user_agent="ua", consent=None,
              conversion_type=None, session_key=None, ad_user_data="granted", ad_personalization="denied")
    assert set(_touchpoint_row(hit)) == set(TOUCHPOINT_COLUMNS)
    assert set(TOUCHPOINT_COLUMNS) <= {column.name for column in Touchpoint.__table__.columns}


def test_consent_mode_signals_are_stored(collector):
    client, writer, store = collector
    body = beacon()
    body.update(ad_user_data="granted", ad_personalization="denied")
    assert post(client, body).status_code == 204
    with store.session(readonly=True) as session:
        hit = session.exec(select(Touchpoint)).one()
    assert (hit.ad_user_data, hit.ad_personalization) == ("granted", "denied")
