"""``closedloop sandbox --seed N``: a running sandbox that has something to show.

Once closedloop's collector answers (the user started ``closedloop run`` on the printed
config), N simulated buyers browse the site: their page views go through the real collector
exactly as ``t.js`` sends them, and to the GA4 emulator as gtag.js would. The buyers who
convert become Salesforce leads and HubSpot contacts. When the daemon has enriched them —
watched the way a rep would, in the CRM records' own fields — sales works them: deals are won
and lost, and the won revenue shows up in GA4 once the daemon's revenue job has sent it.

Everything goes through the front doors (HTTP to the collector, the emulators' operator API
for CRM users' clicks); nothing here knows closedloop's code.
"""
from __future__ import annotations

import random
import threading
import time
from decimal import Decimal
from typing import Callable

import requests

from sandbox.sales import create_leads, enriched, work_pipeline
from sandbox.traffic import TrafficGenerator

SITE_ORIGIN = "https://www.example.com"


class Seeder:
    """Fills the sandbox through the collector at ``collector_url``, saying what it does."""

    def __init__(self, suite, collector_url: str, *, people: int, seed: int, say: Callable[[str], None],
                 stop: threading.Event, poll_seconds: float = 1.0, settle_seconds: float = 15.0,
                 patience_seconds: float = 180.0) -> None:
        self.suite, self.collector_url, self.people, self.seed = suite, collector_url.rstrip("/"), people, seed
        self.say, self.stop = say, stop
        self.poll, self.settle, self.patience = poll_seconds, settle_seconds, patience_seconds

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self.run, name="sandbox-seed", daemon=True)
        thread.start()
        return thread

    def run(self) -> None:
        if not self._wait_for_collector():
            return
        generator = TrafficGenerator(self.collector_url, self.suite.ga4.url, self.suite.ga4.measurement_id,
                                     seed=self.seed, people=self.people)
        plan = generator.plan()
        beacons = generator.send(plan)
        leads = create_leads(self.suite, plan)
        self.say(f"seed: {len(plan)} visitors sent {beacons} beacons to the collector; {len(leads)} of them "
                 f"converted: {sum(lead.crm == 'salesforce' for lead in leads)} Salesforce leads and "
                 f"{sum(lead.crm == 'hubspot' for lead in leads)} HubSpot contacts created")
        done = self._settle(lambda: sum(enriched(self.suite, lead) for lead in leads), len(leads))
        if done is None:
            return
        self.say(f"seed: {done} of {len(leads)} leads enriched by closedloop (their CL_* / cl_* fields are "
                 "filled); sales now works them")
        outcomes = work_pipeline(self.suite, leads, random.Random(self.seed))
        self.say(f"seed: deals won {outcomes['won']}, lost {outcomes['lost']}, open {outcomes['open']}; "
                 "waiting for the revenue in GA4")
        purchases = self._settle(lambda: len(self._purchases()), outcomes["won"])
        if purchases is None:
            return
        revenue = sum((Decimal(str(event["params"].get("value", 0))) for event in self._purchases()), Decimal(0))
        self.say(f"seed: GA4 received {purchases} purchase(s) worth {revenue:,.2f} — try `closedloop report` "
                 "with the same --config")

    def _wait_for_collector(self) -> bool:
        said = False
        while not self.stop.is_set():
            try:
                if requests.get(f"{self.collector_url}/t.js", timeout=2).status_code == 200:
                    return True
            except requests.RequestException:
                pass
            if not said:
                self.say(f"seed: waiting for closedloop's collector at {self.collector_url} (start `closedloop run`)")
                said = True
            self.stop.wait(self.poll)
        return False

    def _settle(self, count: Callable[[], int], target: int) -> int | None:
        """Poll ``count`` until it reaches ``target``, or stops growing for a while after
        growing at all, or patience runs out; None when asked to stop."""
        started = changed = time.monotonic()
        last = -1
        while not self.stop.is_set():
            now, value = time.monotonic(), count()
            if value != last:
                last, changed = value, now
            if value >= target or (value and now - changed >= self.settle) or now - started >= self.patience:
                return value
            self.stop.wait(self.poll)
        return None

    def _purchases(self) -> list[dict]:
        return [event for event in self.suite.ga4.event_log() if event["name"] == "purchase"]
