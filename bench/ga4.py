"""GA4 Measurement Protocol requests per event, through the real outbox drain and sender.

A Measurement Protocol request carries one ``client_id`` (one user) and up to 25 events, so the
floor for a set of events is the sum over users of ceil(events of that user / 25). Three
outboxes of 10,000 won-deal purchases each:

- ``one user``: all 10,000 under one client id (e.g. deals with no web visitor, sent under the
  configured ``unattributed_client_id``): floor 400 requests, the issue's target;
- ``2,000 users``: five deals per buyer: floor 2,000;
- ``10,000 users``: one deal per buyer, the usual case: floor 10,000. No client can batch
  these tighter, since a request cannot mix users.

Each run checks that GA4 (the emulator) received every event once and that its revenue equals
the sum of the deals.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

from adapters.ga4 import Ga4Sender
from bench.common import Measurement
from sandbox.ga4 import GA4Sandbox
from state import Store
from sync.jobs.ga4_events import outbox_event
from sync.jobs.outbox import drain_outbox


def main(options: list[str]) -> list[Measurement]:
    parser = argparse.ArgumentParser(prog="python -m bench ga4", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--deals", type=int, default=10_000)
    args = parser.parse_args(options)
    measurements = []
    for users in (1, args.deals // 5, args.deals):
        requests, floor, seconds = measure(args.deals, users)
        target = "≤ 400 requests" if users == 1 else "= floor"
        ok = requests <= 400 if users == 1 and args.deals == 10_000 else requests == floor
        measurements.append(Measurement("ga4", f"{args.deals:,} purchases, {users:,} user(s)", requests, "requests",
                                        f"{target} ({floor:,})", ok,
                                        {"floor": floor, "events_per_request": round(args.deals / requests, 2),
                                         "seconds": round(seconds, 1)}))
        print(f"{users} users: {requests} requests (floor {floor}), {seconds:.1f}s", flush=True)
    return measurements


def measure(deals: int, users: int) -> tuple[int, int, float]:
    directory = Path(tempfile.mkdtemp(prefix="closedloop-bench-ga4-"))
    store = Store(f"sqlite:///{directory / 'state.db'}")
    store.migrate()
    ga4 = GA4Sandbox()
    ga4.start()
    try:
        now = datetime.now(timezone.utc)
        with store.session() as session:
            for n in range(deals):
                client = f"{1000 + n % users}.1700000000"
                session.add(outbox_event(
                    key=f"bench:{n}:purchase:1", kind="revenue", crm="bench", record_id=str(n), name="purchase",
                    client_id=client, occurred_at=now - timedelta(hours=1), person=None,
                    params={"transaction_id": f"bench:{n}", "value": 100 + n % 7, "currency": "USD",
                            "items": [{"item_id": f"bench:{n}", "item_name": "won deal", "price": 100 + n % 7,
                                       "quantity": 1}]}))
        sender = Ga4Sender(ga4.url, ga4.measurement_id, ga4.api_secret)
        started = time.monotonic()
        result = drain_outbox(store, sender, lambda: datetime.now(timezone.utc))
        seconds = time.monotonic() - started
        expected = sum(Decimal(100 + n % 7) for n in range(deals))
        received = sum(1 for event in ga4.events if event.name == "purchase")
        revenue = sum((event.revenue for event in ga4.events), Decimal(0))
        if result.sent != deals or received != deals or revenue != expected:
            raise RuntimeError(f"sent {result.sent}, GA4 kept {received} purchases worth {revenue}; expected "
                               f"{deals} worth {expected}")
        floor = sum(-(-count // 25) for count in _per_user(deals, users))
        return sum(1 for entry in ga4.request_log() if entry["path"] == "/mp/collect"), floor, seconds
    finally:
        ga4.stop()
        store.dispose()


def _per_user(deals: int, users: int) -> list[int]:
    return [deals // users + (1 if u < deals % users else 0) for u in range(users)]
