"""Requests per 1,000 ad platform conversions vs each platform's batch floor.

Through the real outbox drain and senders (google-ads-datamanager; facebook-business's event model
on closedloop's HTTP plumbing) against the Data Manager and Conversions API emulators. The floors
are the platforms' batch limits: Data Manager takes up to 2,000 events in one request (across up
to 10 conversion actions, reference §2.6), Meta up to 1,000 (§3.2). So 1,000 conversions split
over two Google conversion actions (qualified leads and won deals) need 1 request, and 1 to Meta;
10,000 need 5 and 10. Each run checks that every conversion arrived exactly once.
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from adapters.google_ads import GoogleAdsSender, user_identifiers
from adapters.google_auth import GoogleCredentials
from adapters.meta import MetaSender, hashed_user_data
from bench.common import Measurement
from sandbox.google_ads import CUSTOMER_ID, QUALIFIED_ACTION, WON_ACTION, DataManagerSandbox
from sandbox.meta import ACCESS_TOKEN, DATASET_ID, MetaSandbox
from state import Store
from state.models import OutboxEvent
from sync.jobs.ad_outbox import drain_destination

FLOORS = {"google_ads": 2000, "meta": 1000}


def main(options: list[str]) -> list[Measurement]:
    parser = argparse.ArgumentParser(prog="python -m bench ads", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--conversions", type=int, nargs="+", default=[1_000, 10_000])
    args = parser.parse_args(options)
    measurements = []
    for count in args.conversions:
        for destination in ("google_ads", "meta"):
            requests, seconds = measure(destination, count)
            floor = -(-count // FLOORS[destination])
            per_thousand = requests * 1000 / count
            measurements.append(Measurement(
                "ads", f"{'Google Ads' if destination == 'google_ads' else 'Meta'}: {count:,} conversions",
                per_thousand, "requests per 1,000", f"= floor ({floor * 1000 / count:g}; {floor} request(s))",
                requests == floor, {"requests": requests, "floor": floor, "seconds": round(seconds, 1)}))
            print(f"{destination}: {count} conversions in {requests} request(s) (floor {floor}), {seconds:.1f}s",
                  flush=True)
    return measurements


def measure(destination: str, count: int) -> tuple[int, float]:
    directory = Path(tempfile.mkdtemp(prefix="closedloop-bench-ads-"))
    store = Store(f"sqlite:///{directory / 'state.db'}")
    store.migrate()
    emulator = DataManagerSandbox(data_dir=directory / "google") if destination == "google_ads" \
        else MetaSandbox(data_dir=directory / "meta")
    emulator.start()
    try:
        now = datetime.now(timezone.utc)
        with store.session() as session:
            for n in range(count):
                session.add(OutboxEvent(idempotency_key=f"{destination}:bench:{n}", destination=destination,
                                        kind="conversion", crm="bench", record_id=str(n), event_name="won",
                                        client_id="", payload=_payload(destination, n, now)))
        sender = _sender(destination, emulator)
        started = time.monotonic()
        result = drain_destination(store, destination, sender, lambda: datetime.now(timezone.utc))
        seconds = time.monotonic() - started
        received = len(emulator.conversions()) if destination == "google_ads" else \
            len(emulator.events(counted_only=True))
        if result.sent != count or received != count:
            raise RuntimeError(f"{destination}: sent {result.sent}, the platform kept {received}; expected {count}"
                               + (f" ({result.stopped_by})" if result.stopped_by else ""))
        return sender.requests_sent, seconds
    finally:
        emulator.stop()
        store.dispose()


def _payload(destination: str, n: int, now: datetime) -> dict:
    moment = now - timedelta(hours=2)
    email = f"buyer{n}@bench.example"
    if destination == "google_ads":
        return {"transaction_id": f"bench:{n}", "conversion_action_id": WON_ACTION if n % 2 else QUALIFIED_ACTION,
                "event_time": moment.isoformat(), "ad_identifiers": {},
                "user_identifiers": user_identifiers(email, None, "US"), "value": str(100 + n % 7) if n % 2 else None,
                "currency": "USD" if n % 2 else None,
                "consent": {"ad_user_data": "GRANTED", "ad_personalization": "GRANTED"},
                "not_before": None, "not_after": (moment + timedelta(days=90)).isoformat()}
    return {"event_name": "Purchase" if n % 2 else "QualifiedLead", "event_time": int(moment.timestamp()),
            "event_id": f"bench:{n}", "user_data": hashed_user_data(email, None, "US"),
            "value": str(100 + n % 7) if n % 2 else None, "currency": "USD" if n % 2 else None,
            "lead_event_source": "bench", "not_after": (moment + timedelta(days=7)).isoformat(), "dedup_hours": 48.0}


def _sender(destination: str, emulator):
    if destination == "google_ads":
        key = emulator.service_account_file.read_text()
        credentials = GoogleCredentials(auth="service_account", token_uri=json.loads(key)["token_uri"],
                                        service_account_json=key)
        return GoogleAdsSender(CUSTOMER_ID, credentials, endpoint=emulator.url)
    return MetaSender(DATASET_ID, ACCESS_TOKEN, graph_url=emulator.url, ca_bundle=str(emulator.ca_path))
