"""Exactly once under SIGKILL: the daemon is killed at random points across many runs.

The emulators run in this process; ``closedloop run --once`` runs as a real subprocess that is
killed with SIGKILL (no chance to clean up) after a random delay, again and again, while deals
are won, re-valued and reopened in the CRMs. Afterwards GA4's revenue must equal the CRM's to
the cent, no event GA4 does not de-duplicate may arrive twice, and no deal may ever have two
live purchases (a purchase without the refund of the one before). A kill during a refund's request leaves it uncertain (dead-lettered, not
resent on a guess); the test then does what the dead letter tells an operator to do.
"""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import defaultdict
from decimal import Decimal

import pytest
from sqlmodel import select

from state.models import DeadLetter
from support import World
from test_revenue import browse, crm_won_revenue_by_first_click_source

pytestmark = pytest.mark.slow

SOURCES = [("https://www.example.com/?utm_source=google&utm_medium=cpc", ""),
           ("https://www.example.com/", "https://www.google.com/"),
           ("https://www.example.com/?utm_source=newsletter&utm_medium=email", ""),
           ("https://www.example.com/", "https://www.facebook.com/")]


def fingerprint(client_id, name, params):
    """What identifies one event closedloop sent (GA4 adds nothing; the sender adds these two)."""
    return client_id, name, json.dumps({k: v for k, v in params.items()
                                        if k not in ("session_id", "engagement_time_msec")}, sort_keys=True)


def test_sigkill_at_random_points_never_loses_or_duplicates_revenue(tmp_path):
    rng = random.Random(20261124)
    world = World(tmp_path, salesforce={"latency_seconds": 0.01}, hubspot={"latency_seconds": 0.01},
                  ga4={"latency_seconds": 0.06})
    try:
        world.create_fields()
        sf_deals, hs_deals = [], []
        for n in range(12):  # people and their deals, not yet won
            url, referrer = SOURCES[n % len(SOURCES)]
            browse(world, f"killsf{n:03d}", f"{5000 + n}.1700000000", url, referrer, email=f"k{n}@sf.example")
            lead = world.salesforce.create("Lead", {"LastName": f"K{n}", "Company": "K", "Email": f"k{n}@sf.example"})
            browse(world, f"killhs{n:03d}", f"{6000 + n}.1700000000", url, referrer, email=f"k{n}@hs.example")
            contact = world.hubspot.create("contacts", {"email": f"k{n}@hs.example"})
            sf_deals.append(lead)
            hs_deals.append(contact)
        world.run("enrich")
        opportunities = [world.salesforce.convert_lead(lead, opportunity={"Amount": 1000 + n, "StageName":
                                                                            "Prospecting"})["opportunityId"]
                         for n, lead in enumerate(sf_deals)]
        deals = []
        for n, contact in enumerate(hs_deals):
            deal = world.hubspot.create("deals", {"dealname": f"K{n}", "amount": str(2000 + n)})
            world.hubspot.associate(deal, contact)
            deals.append(deal)
        world.run("enrich")

        environment = {**os.environ, **world.environ}
        kills = 0
        for round_ in range(14):
            for _ in range(3):  # the sales team keeps working between (and during) runs
                change = rng.random()
                if change < 0.5:
                    world.salesforce.update("Opportunity", rng.choice(opportunities), {"StageName": "Closed Won"})
                    world.hubspot.update("deals", rng.choice(deals), {"dealstage": "closedwon"})
                elif change < 0.8:
                    world.salesforce.update("Opportunity", rng.choice(opportunities), {"Amount": rng.randint(500, 9000)})
                    world.hubspot.update("deals", rng.choice(deals), {"amount": str(rng.randint(500, 9000))})
                else:
                    world.salesforce.update("Opportunity", rng.choice(opportunities), {"StageName": "Closed Lost"})
                    world.hubspot.update("deals", rng.choice(deals), {"dealstage": "closedlost"})
            with subprocess.Popen([sys.executable, "-m", "sync.cli", "run", "--once", "--config",
                                   str(world.config_path)], env=environment, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL) as process:
                time.sleep(rng.uniform(0.3, 3.0))
                if process.poll() is None:
                    process.send_signal(signal.SIGKILL)
                    kills += 1
                process.wait(timeout=30)
        assert kills >= 5, "the daemon finished before it could be killed; slow the emulators down"
        for _ in range(2):  # let it finish
            result = subprocess.run([sys.executable, "-m", "sync.cli", "run", "--once", "--config",
                                     str(world.config_path)], env=environment, capture_output=True, text=True,
                                    timeout=300)
            assert result.returncode == 0, result.stderr

        # A kill during a refund's request leaves it uncertain: closedloop dead-letters it instead of
        # guessing (GA4 does not de-duplicate refunds). Do what the message tells an operator to do:
        # look in GA4, then retry the missing ones and drop the ones that arrived.
        received = {fingerprint(e.client_id, e.name, e.params) for e in world.ga4.events}
        with world.store.session(readonly=True) as session:
            uncertain = session.exec(select(DeadLetter).where(DeadLetter.code == "GA4_DELIVERY_UNCERTAIN")).all()
        assert len(uncertain) <= kills
        missing = [letter.id for letter in uncertain
                   if fingerprint(letter.payload["client_id"], letter.payload["event"]["name"],
                                  letter.payload["event"]["params"]) not in received]
        arrived = [letter.id for letter in uncertain if letter.id not in missing]
        for command, ids in (("retry", missing), ("drop", arrived)):
            if ids:
                subprocess.run([sys.executable, "-m", "sync.cli", "dead-letters", command, *map(str, ids),
                                "--config", str(world.config_path)], env=environment, check=True, timeout=60)
        subprocess.run([sys.executable, "-m", "sync.cli", "run", "--once", "--config", str(world.config_path)],
                       env=environment, check=True, timeout=300, capture_output=True)

        sent = [fingerprint(e.client_id, e.name, e.params) for e in world.ga4.events if e.name != "purchase"]
        assert len(sent) == len(set(sent)), "an event GA4 does not de-duplicate arrived twice"
        ga4 = {source: Decimal(str(value)) for source, value in world.ga4.report("firstUserSource").items()
               if value != 0}
        assert ga4 == crm_won_revenue_by_first_click_source(world)

        # Per deal, in the order GA4 received them: a purchase only when none is live (the deal's
        # later events wait while a refund is uncertain), a refund only of the live purchase.
        live: dict[str, str | None] = defaultdict(lambda: None)
        for event in (e for e in world.ga4.events if e.name in ("purchase", "refund")):
            transaction = event.params["transaction_id"]
            base = ":".join(transaction.split(":")[:2])
            if event.name == "purchase":
                assert live[base] is None, f"{base}: two purchases without a refund between them"
                live[base] = transaction
            else:
                assert live[base] == transaction, f"{transaction}: refund of a purchase that is not live"
                live[base] = None
    finally:
        world.close()
