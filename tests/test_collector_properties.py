"""Property tests: arbitrary JSON and arbitrary Unicode thrown at the real collector over HTTP, on
SQLite and on a real PostgreSQL server.

Whatever arrives: no answer is 5xx; every beacon answered 204 can be read back at once (204
means committed), holding exactly the text the collector's normalisation makes of what was
sent; and afterwards ``report``, ``status`` and ``explain`` read the store and exit 0.
"""
from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import time
from datetime import timedelta

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlmodel import select

from state.models import Touchpoint
from support import DESKTOP_UA, free_port
from sync.capture.app import create_app
from sync.capture.server import BackgroundServer
from sync.capture.text import clean_text, is_clean
from sync.config import load_config

SITE = "https://www.example.com"
TEXT_COLUMNS = ("url", "referrer", "utm_source", "utm_campaign", "gclid", "language", "timezone", "user_agent")

# Every code point, surrogates included; NUL, RTL/LTR marks and overrides, and emoji made likely.
ANY_CHARACTER = st.characters(codec=None, categories=None) | st.sampled_from(
    ["\x00", "\ud800", "\udfff", "\u200f", "\u202e", "\u2066", "\U0001f600", "\ufeff", "\x1b"])
HOSTILE_TEXT = st.text(ANY_CHARACTER, max_size=40) | st.builds(
    lambda char, size: char * size, ANY_CHARACTER, st.sampled_from([2047, 2049, 4096, 4097, 10_240]))
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | HOSTILE_TEXT,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(HOSTILE_TEXT, children, max_size=4),
    max_leaves=10)


@pytest.fixture
def collector(store, write_config):
    """The collector app under uvicorn on a loopback port, limits off (one test client sends it all)."""
    url = store.url.render_as_string(hide_password=False)
    config_path = write_config(f"""
        [state]
        url = "{url}"
        [collector]
        allowed_origins = ["{SITE}"]
        max_body_bytes = 65536
        ip_rate_per_second = 0
        visitor_rate_per_second = 0
        identify_devices_per_email = 0
    """)
    port = free_port()
    server = BackgroundServer(create_app(load_config(config_path, environ={}), store), "127.0.0.1", port).start()
    yield f"http://127.0.0.1:{port}", config_path
    server.stop()


def post(session: requests.Session, base: str, body: bytes) -> requests.Response:
    return session.post(f"{base}/collect", data=body, timeout=30,
                        headers={"Content-Type": "text/plain", "Origin": SITE, "User-Agent": DESKTOP_UA})


def expected(value, cap: int):
    return clean_text(value)[:cap] if isinstance(value, str) else None


def test_hostile_beacons_never_fail_and_every_204_is_stored(store, collector):
    base, config_path = collector
    session = requests.Session()
    numbers = itertools.count()
    accepted: list[str] = []

    @settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))
    @given(url=HOSTILE_TEXT, referrer=HOSTILE_TEXT, campaign=HOSTILE_TEXT, source=HOSTILE_TEXT, gclid=HOSTILE_TEXT,
           lang=HOSTILE_TEXT, ua=HOSTILE_TEXT, ts=st.integers(min_value=-10 ** 40, max_value=10 ** 40),
           kind=st.sampled_from(["pageview", "pageview", "identify", "conversion", "other"]),
           extra=st.dictionaries(HOSTILE_TEXT, JSON_VALUES, max_size=3),
           depth=st.sampled_from([0, 0, 0, 7, 9, 3000]), raw=st.binary(max_size=200))
    def throw(url, referrer, campaign, source, gclid, lang, ua, ts, kind, extra, depth, raw):
        visitor = f"prop{next(numbers):012d}"
        beacon = {**extra, "v": 1, "type": kind, "vid": visitor, "ts": ts, "url": "https://www.example.com/" + url,
                  "referrer": referrer, "utm": {"utm_campaign": campaign, "utm_source": source},
                  "click_ids": {"gclid": gclid}, "lang": lang, "ua": "Mozilla/5.0 " + ua,
                  "email": "someone@example.com", "conversion_type": "form"}
        body = json.dumps(beacon)
        if depth:
            body = body[:-1] + ', "nested": ' + "[" * depth + "]" * depth + "}"
        for payload in (body.encode(), raw):
            response = post(session, base, payload)
            assert response.status_code < 500, response.text
            assert response.status_code in (204, 400, 413), response.text
            if response.status_code != 204 or payload is raw:
                continue
            accepted.append(visitor)
            with store.session(readonly=True) as db:
                rows = db.exec(select(Touchpoint).where(Touchpoint.visitor_id == visitor)).all()
            assert len(rows) == 1, "answered 204 but not stored"
            row = rows[0]
            assert row.url == expected(beacon["url"], 2048) and row.referrer == expected(referrer, 2048)
            assert row.utm_campaign == (expected(campaign, 256) or None)
            assert row.gclid == (expected(gclid, 256) or None)
            assert row.language == expected(lang, 35)
            assert all(is_clean(getattr(row, column)) for column in TEXT_COLUMNS if getattr(row, column))
            assert row.received_at - row.occurred_at <= timedelta(hours=6)
            assert row.occurred_at <= row.received_at

    throw()
    assert accepted, "no generated beacon was accepted: the property above was never exercised"
    # Everything stored reads back as valid text, through every command that prints it.
    with store.session(readonly=True) as db:
        for row in db.exec(select(Touchpoint)).all():
            assert all(is_clean(getattr(row, column)) for column in TEXT_COLUMNS if getattr(row, column))
    environment = {**os.environ, "COLUMNS": "200"}
    for command in (["report"], ["report", "--format", "csv"], ["status"], *(["explain", v] for v in accepted[:3])):
        result = subprocess.run([sys.executable, "-m", "sync.cli", *command, "--config", str(config_path)],
                                capture_output=True, text=True, timeout=120, env=environment)
        assert result.returncode == 0, f"{command}: {result.stderr[-2000:]}"


def test_markup_and_escapes_in_stored_text_do_not_break_the_terminal_tables(store, collector):
    """Stored as the valid text it is, rich markup and terminal escapes in a campaign reach the
    tables of report and explain as inert text (sync/reports/safe_text.py)."""
    base, config_path = collector
    session = requests.Session()
    for visitor, campaign in (("markup0001", "[/bogus]"), ("escape0001", "\x1b]8;;https://evil.example\x1b\\click")):
        beacon = {"v": 1, "type": "pageview", "vid": visitor, "ts": int(time.time() * 1000),
                  "url": f"{SITE}/?utm_source=x&utm_medium=cpc", "utm": {"utm_campaign": campaign,
                                                                          "utm_source": "x", "utm_medium": "cpc"}}
        assert post(session, base, json.dumps(beacon).encode()).status_code == 204
    environment = {**os.environ, "COLUMNS": "200"}
    for command in (["report"], ["explain", "markup0001"], ["explain", "escape0001"]):
        result = subprocess.run([sys.executable, "-m", "sync.cli", *command, "--config", str(config_path)],
                                capture_output=True, text=True, timeout=120, env=environment)
        assert result.returncode == 0, f"{command}: {result.stderr[-500:]}"
        assert "\x1b]8;" not in result.stdout
        if command != ["explain", "escape0001"]:
            assert "[/bogus]" in result.stdout  # shown as the text it is
